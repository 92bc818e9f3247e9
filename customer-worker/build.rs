//! Compiles `proto/customer/v1/events.proto` (with protox: no system protoc)
//! into a descriptor set the worker decodes protobuf events with.

fn main() {
    let proto = std::path::Path::new("../proto");
    println!("cargo:rerun-if-changed=../proto/customer/v1/events.proto");
    let descriptors = match protox::compile(["customer/v1/events.proto"], [proto]) {
        Ok(descriptors) => descriptors,
        Err(error) => panic!("proto/customer/v1/events.proto: {error}"),
    };
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("events.bin");
    if let Err(error) = std::fs::write(&out, prost::Message::encode_to_vec(&descriptors)) {
        panic!("writing {}: {error}", out.display());
    }
}
