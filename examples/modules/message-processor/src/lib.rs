//! Example wasmq ETL module: drops spam, oversized, stale and unlabelled messages, transforms
//! JSON and plain-text payloads, and adds enrichment headers.
//!
//! Build for the broker with `cargo build --release --target wasm32-wasi --lib`; the module is
//! `target/wasm32-wasi/release/message_processor.wasm`. Configuration (all optional) is the
//! pipeline's `custom_config`, see [`EtlConfig`].

use std::sync::{PoisonError, RwLock};

use wasmq_module::{Message, ProcessResult};

mod config;
mod keywords;
mod processor;

pub use config::{EnrichmentConfig, EtlConfig, FilterRules, TransformationConfig};
pub use keywords::KeywordSet;
pub use processor::{geolocate, now_ms, MessageProcessor, PROCESSOR_NAME, PROCESSOR_VERSION};

/// The processor every call uses; `None` until `init` runs or the first message arrives.
static PROCESSOR: RwLock<Option<MessageProcessor>> = RwLock::new(None);

/// Applies the module configuration (JSON text, `None` for defaults). Invalid configuration is
/// reported as an error and the defaults are used instead.
pub fn init(config: Option<&str>) -> Result<(), String> {
    let (processor, outcome) = match config.map(MessageProcessor::from_json) {
        None => (MessageProcessor::default(), Ok(())),
        Some(Ok(processor)) => (processor, Ok(())),
        Some(Err(error)) => (
            MessageProcessor::default(),
            Err(format!("invalid configuration, using defaults: {error}")),
        ),
    };
    *PROCESSOR.write().unwrap_or_else(PoisonError::into_inner) = Some(processor);
    outcome
}

/// Processes one message with the configured processor (the defaults when `init` never ran).
pub fn process(message: Message) -> ProcessResult {
    {
        let processor = PROCESSOR.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(processor) = processor.as_ref() {
            return processor.process(message);
        }
    }
    PROCESSOR
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(MessageProcessor::default)
        .process(message)
}

wasmq_module::export_module!(process, init);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_applies_or_rejects_configuration() {
        assert!(init(Some(r#"{"filter_rules": {"required_headers": ["tenant"]}}"#)).is_ok());
        let message = Message::new("hello")
            .with_header("source", "tests")
            .with_timestamp(now_ms());
        assert_eq!(process(message.clone()), ProcessResult::filtered());

        let error = init(Some("{broken")).unwrap_err();
        assert!(error.starts_with("invalid configuration, using defaults"));
        assert_eq!(process(message.clone()).transformed_messages.len(), 1);

        assert!(init(None).is_ok());
        assert_eq!(process(message).transformed_messages.len(), 1);
    }
}
