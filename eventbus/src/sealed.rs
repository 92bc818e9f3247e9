//! Supertraits that keep traits users call but should not implement closed:
//! each public trait here has its own, so that they can grow without a
//! breaking change. (`ConsumerGroup`'s is in `__private`, for `#[consumer]`.)

/// For [`IntoOutcome`](crate::outcome::IntoOutcome).
pub trait IntoOutcome {}
/// For [`IntoBindingAnswer`](crate::binding::IntoBindingAnswer).
pub trait IntoBindingAnswer {}
/// For [`ResultExt`](crate::outcome::ResultExt).
pub trait ResultExt {}
/// For [`IntoConsumers`](crate::consumer::IntoConsumers).
pub trait IntoConsumers {}
/// For [`Handler`](crate::handler::Handler).
pub trait Handler<Args> {}
/// For [`IntoAnswers`](crate::handler::IntoAnswers).
pub trait IntoAnswers {}
