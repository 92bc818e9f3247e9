//! TLS to the sidecar's API: `https://` and `?tls=true` endpoints are
//! dialled over TLS and verified (against a CA made here), and an https
//! endpoint is never dialled in cleartext.
#![allow(clippy::unwrap_used)]

use eventbus::publisher::{DaprPublisher, Message, Publisher};
use eventbus::sidecar::DaprEndpoint;
use eventbus::testing::TestSidecar;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// A CA, and a certificate for `localhost` it signed: (CA PEM, certificate PEM, key PEM).
fn certificates() -> (String, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let certificate = CertificateParams::new(vec!["localhost".to_owned()]).unwrap().signed_by(&key, &issuer).unwrap();
    (ca.pem(), certificate.pem(), key.serialize_pem())
}

fn message() -> Message {
    Message::json("pubsub", "orders", &serde_json::json!({"order_id": "o-1"})).unwrap()
}

#[tokio::test]
async fn https_and_tls_true_endpoints_publish_over_verified_tls() {
    let (ca, certificate, key) = certificates();
    let ca_file = std::env::temp_dir().join(format!("eventbus-tls-ca-{}.pem", std::process::id()));
    std::fs::write(&ca_file, &ca).unwrap();
    let sidecar = TestSidecar::start_api_tls(certificate.as_bytes(), key.as_bytes()).await.unwrap();
    let port = sidecar.address().port();

    for address in [format!("https://localhost:{port}"), format!("localhost:{port}?tls=true")] {
        let endpoint = DaprEndpoint::new(address.clone()).ca_file(&ca_file).token(Some("s3cret".to_owned()));
        assert!(endpoint.is_tls(), "{address}");
        let publisher = DaprPublisher::connect_to(endpoint).await.unwrap_or_else(|e| panic!("{address}: {e}"));
        publisher.publish(message()).await.unwrap();
    }
    let published = sidecar.published();
    assert_eq!(published.len(), 2);
    assert!(published.iter().all(|p| p.token.as_deref() == Some("s3cret")), "the token went over TLS");

    // Verified: without the CA the certificate is not trusted.
    let untrusted = DaprPublisher::connect_to(format!("https://localhost:{port}")).await;
    assert!(untrusted.is_err(), "a certificate the system does not trust was accepted");
    std::fs::remove_file(&ca_file).unwrap();
}

#[tokio::test]
async fn an_https_endpoint_is_never_dialled_in_cleartext() {
    let plaintext = TestSidecar::start_api().await.unwrap();
    let address = format!("https://localhost:{}", plaintext.address().port());
    let publisher = DaprPublisher::connect_to(DaprEndpoint::new(address).token(Some("s3cret".to_owned()))).await;
    if let Ok(publisher) = publisher {
        // The connection may be lazy: the call must fail, and nothing arrive.
        assert!(publisher.publish(message()).await.is_err());
    }
    assert!(plaintext.published().is_empty(), "the token reached a cleartext server");
}
