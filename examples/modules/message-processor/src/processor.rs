//! The processing itself: filter, transform by content type, enrich with headers.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::IgnoredAny;
use serde_json::{Map, Number, Value};
use wasmq_module::{Message, ProcessResult};

use crate::config::{EnrichmentConfig, EtlConfig, TransformationConfig};
use crate::keywords::KeywordSet;

/// Value of the `processor` header.
pub const PROCESSOR_NAME: &str = "message-processor";
/// Value of the `_processor_version` field added to JSON objects.
pub const PROCESSOR_VERSION: &str = "2.0.0";
/// Prefix of transformed `text/plain` payloads.
const TEXT_PREFIX: &str = "[PROCESSED] ";
/// Room reserved for the fields added to a JSON object.
const JSON_GROWTH: usize = 128;

/// Languages recognised by common words, in order of precedence.
const LANGUAGES: [(&str, &[&str]); 3] = [
    ("en", &[" the ", " and ", " is "]),
    ("es", &[" el ", " la ", " es "]),
    ("fr", &[" le ", " est "]),
];

/// How the `content-type` header says to transform the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContentKind {
    /// `application/json`: parsed and re-serialized, objects gain fields.
    Json,
    /// `text/plain`: upper-cased with a prefix.
    Text,
    /// Anything else, or no header: passed through.
    Other,
}

impl ContentKind {
    /// From the media type of the `content-type` header, ignoring parameters and ASCII case.
    fn of(message: &Message) -> Self {
        match message.header("content-type").map(media_type) {
            Some(media) if media.eq_ignore_ascii_case("application/json") => ContentKind::Json,
            Some(media) if media.eq_ignore_ascii_case("text/plain") => ContentKind::Text,
            _ => ContentKind::Other,
        }
    }
}

/// What the transformation step knows about the payload it produced, to spare re-analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Payload {
    /// A JSON object this module serialized.
    JsonObject,
    /// UTF-8 text starting with `[PROCESSED] `: neither a JSON object nor XML.
    ProcessedText,
    /// Anything else; analysed from scratch.
    Unknown,
}

/// A configured message processor. Cheap to share: processing takes `&self`.
#[derive(Debug, Clone)]
pub struct MessageProcessor {
    config: EtlConfig,
    spam_keywords: KeywordSet,
    max_age_ms: i64,
    language_words: KeywordSet,
}

impl Default for MessageProcessor {
    fn default() -> Self {
        MessageProcessor::new(EtlConfig::default())
    }
}

impl MessageProcessor {
    /// A processor applying `config`.
    pub fn new(config: EtlConfig) -> Self {
        let max_age_ms = i64::try_from(config.filter_rules.max_age_seconds)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000);
        MessageProcessor {
            spam_keywords: KeywordSet::new(&config.filter_rules.spam_keywords),
            max_age_ms,
            language_words: KeywordSet::ranked(LANGUAGES.iter().map(|(_, words)| words.iter())),
            config,
        }
    }

    /// A processor configured from JSON (see [`EtlConfig::from_json`]).
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        EtlConfig::from_json(json).map(MessageProcessor::new)
    }

    /// The configuration applied.
    pub fn config(&self) -> &EtlConfig {
        &self.config
    }

    /// Processes `message` at the current time.
    pub fn process(&self, message: Message) -> ProcessResult {
        self.process_at(message, now_ms())
    }

    /// Processes `message` as if the time were `now_ms` (milliseconds since the Unix epoch):
    /// filtered messages give no output, a payload that does not match its content type gives
    /// a failed result, anything else one transformed and enriched message.
    pub fn process_at(&self, mut message: Message, now_ms: i64) -> ProcessResult {
        if self.is_filtered(&message, now_ms) {
            return ProcessResult::filtered();
        }
        let kind = ContentKind::of(&message);
        message.headers.reserve(self.added_header_count(&message, kind));
        let payload = match self.transform(&mut message, kind, now_ms) {
            Ok(payload) => payload,
            Err(error) => return ProcessResult::failed(error),
        };
        self.enrich(&mut message, payload, now_ms);
        ProcessResult::forward(message)
    }

    /// Whether a filter rule drops `message`.
    pub fn is_filtered(&self, message: &Message, now_ms: i64) -> bool {
        let rules = &self.config.filter_rules;
        rules
            .required_headers
            .iter()
            .any(|name| !message.headers.contains_key(name))
            || message.value.len() as u64 > rules.max_message_size
            || now_ms.saturating_sub(message.timestamp) > self.max_age_ms
            || self.spam_keywords.is_found_in(&message.value)
    }

    fn transform(
        &self,
        message: &mut Message,
        kind: ContentKind,
        now_ms: i64,
    ) -> Result<Payload, String> {
        set_number_header(message, "processed_at", now_ms.div_euclid(1000));
        match kind {
            ContentKind::Json => transform_json(message, &self.config.transformation_config),
            ContentKind::Text => transform_text(message),
            ContentKind::Other => {
                set_header(message, "transformation", "passthrough");
                Ok(Payload::Unknown)
            }
        }
    }

    fn enrich(&self, message: &mut Message, payload: Payload, now_ms: i64) {
        set_header(message, "enriched", "true");
        set_header(message, "processor", PROCESSOR_NAME);
        set_number_header(message, "processing_time", now_ms);

        let EnrichmentConfig {
            enable_geolocation,
            enable_content_analysis,
            enable_language_detection,
        } = self.config.enrichment_config;

        if enable_geolocation {
            if let Some((country, city, region)) = message.header("client_ip").map(geolocate) {
                set_header(message, "geo_country", country);
                set_header(message, "geo_city", city);
                set_header(message, "geo_region", region);
            }
        }

        if enable_content_analysis {
            let (detected_type, text) = detect_content_type(&message.value, payload);
            let language = match text {
                Some(text) if enable_language_detection => Some(self.detect_language(text)),
                None if enable_language_detection => Some("unknown"),
                _ => None,
            };
            let content_size = message.value.len() as u64;
            set_number_header(message, "content_size", content_size);
            set_header(message, "content_type_detected", detected_type);
            if let Some(language) = language {
                set_header(message, "content_language", language);
            }
        }
    }

    /// How many headers `transform` and `enrich` add to `message` at most, so the header map
    /// grows once.
    fn added_header_count(&self, message: &Message, kind: ContentKind) -> usize {
        let enrichment = &self.config.enrichment_config;
        let transformation = match kind {
            ContentKind::Json => 0,
            ContentKind::Text => 2,
            ContentKind::Other => 1,
        };
        let has_client_ip = message.headers.contains_key("client_ip");
        let geolocation = if enrichment.enable_geolocation && has_client_ip { 3 } else { 0 };
        let content_analysis = if enrichment.enable_content_analysis { 3 } else { 0 };
        1 + transformation + 3 + geolocation + content_analysis
    }

    /// `en`, `es` or `fr` from common words (ASCII case-insensitive), else `unknown`.
    pub fn detect_language(&self, text: &[u8]) -> &'static str {
        self.language_words
            .best_group_in(text)
            .map_or("unknown", |group| LANGUAGES[group].0)
    }
}

/// Milliseconds since the Unix epoch (negative before it).
pub fn now_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

fn set_header(message: &mut Message, name: &str, value: &str) {
    message.headers.insert(name.to_string(), value.to_string());
}

fn set_number_header(message: &mut Message, name: &str, value: impl itoa::Integer) {
    let mut buffer = itoa::Buffer::new();
    set_header(message, name, buffer.format(value));
}

/// The media type of a `content-type` value, without parameters such as `charset`.
fn media_type(content_type: &str) -> &str {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
}

fn transform_json(message: &mut Message, config: &TransformationConfig) -> Result<Payload, String> {
    let mut json: Value = serde_json::from_slice(&message.value)
        .map_err(|error| format!("invalid JSON payload: {error}"))?;
    let payload = match &mut json {
        Value::Object(object) => {
            add_json_fields(object, config);
            Payload::JsonObject
        }
        _ => Payload::Unknown,
    };
    let capacity = message.value.len() + JSON_GROWTH;
    message.value.clear();
    message.value.reserve(capacity);
    serde_json::to_writer(&mut message.value, &json)
        .map_err(|error| format!("cannot serialize JSON payload: {error}"))?;
    Ok(payload)
}

fn add_json_fields(object: &mut Map<String, Value>, config: &TransformationConfig) {
    object.insert("_processed".to_string(), Value::Bool(true));
    object.insert(
        "_processor_version".to_string(),
        Value::from(PROCESSOR_VERSION),
    );

    if config.enable_temperature_conversion {
        if let Some(celsius) = object.get("temperature_celsius").and_then(Value::as_f64) {
            match Number::from_f64(celsius * 9.0 / 5.0 + 32.0) {
                Some(fahrenheit) => {
                    object.insert(
                        "temperature_fahrenheit".to_string(),
                        Value::Number(fahrenheit),
                    );
                }
                None => {
                    object.insert(
                        "temperature_conversion_error".to_string(),
                        Value::from("temperature conversion gave a non-finite value"),
                    );
                }
            }
        }
    }

    if config.enable_email_normalization {
        if let Some(Value::String(email)) = object.get_mut("email") {
            if email.is_ascii() {
                email.make_ascii_lowercase();
            } else {
                *email = email.to_lowercase();
            }
        }
    }

    if config.enable_coordinate_formatting {
        let latitude = object.get("latitude").and_then(Value::as_f64);
        let longitude = object.get("longitude").and_then(Value::as_f64);
        if let (Some(latitude), Some(longitude)) = (latitude, longitude) {
            object.insert(
                "coordinate_string".to_string(),
                Value::String(format!("{latitude:.6},{longitude:.6}")),
            );
        }
    }
}

fn transform_text(message: &mut Message) -> Result<Payload, String> {
    let text = std::str::from_utf8(&message.value)
        .map_err(|error| format!("invalid UTF-8 text payload: {error}"))?;
    let original_length = text.len();
    let mut transformed = String::with_capacity(TEXT_PREFIX.len() + original_length);
    transformed.push_str(TEXT_PREFIX);
    if text.is_ascii() {
        transformed.push_str(text);
        transformed.make_ascii_uppercase();
    } else {
        transformed.extend(text.chars().flat_map(char::to_uppercase));
    }
    message.value = transformed.into_bytes();
    set_header(message, "transformation", "text_uppercase");
    set_number_header(message, "original_length", original_length as u64);
    Ok(Payload::ProcessedText)
}

/// Country, city and region for an IPv4 address, from a small built-in table.
pub fn geolocate(ip: &str) -> (&'static str, &'static str, &'static str) {
    if ip.starts_with("192.168.") || ip.starts_with("10.") || is_rfc1918_172(ip) {
        ("Local", "Private Network", "RFC1918")
    } else if ip.starts_with("8.8.") || ip.starts_with("8.4.") {
        ("US", "Mountain View", "California")
    } else if ip.starts_with("1.1.") {
        ("US", "San Francisco", "California")
    } else {
        ("Unknown", "Unknown", "Unknown")
    }
}

/// Whether `ip` is in 172.16.0.0/12.
fn is_rfc1918_172(ip: &str) -> bool {
    ip.strip_prefix("172.")
        .and_then(|rest| rest.split_once('.'))
        .filter(|(octet, _)| !octet.is_empty() && octet.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|(octet, _)| octet.parse::<u8>().ok())
        .map_or(false, |octet| (16..=31).contains(&octet))
}

/// The detected media type of `value`, and `value` as text when it is UTF-8.
fn detect_content_type(value: &[u8], payload: Payload) -> (&'static str, Option<&[u8]>) {
    match payload {
        Payload::JsonObject => return ("application/json", Some(value)),
        Payload::ProcessedText => return ("text/plain", Some(value)),
        Payload::Unknown => {}
    }
    if std::str::from_utf8(value).is_err() {
        return ("application/octet-stream", None);
    }
    let detected = match value.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') if serde_json::from_slice::<IgnoredAny>(value).is_ok() => "application/json",
        Some(b'<') => "application/xml",
        _ => "text/plain",
    };
    (detected, Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: i64 = 1_700_000_000_000;

    fn message(content_type: Option<&str>, value: &[u8]) -> Message {
        let message = Message::new(value)
            .with_key("key")
            .with_header("source", "tests")
            .with_timestamp(NOW_MS - 1000);
        match content_type {
            Some(content_type) => message.with_header("content-type", content_type),
            None => message,
        }
    }

    fn process(message: Message) -> ProcessResult {
        MessageProcessor::default().process_at(message, NOW_MS)
    }

    fn single_output(result: ProcessResult) -> Message {
        assert_eq!(result.error, None);
        assert!(result.should_continue);
        assert_eq!(result.transformed_messages.len(), 1);
        result.transformed_messages.into_iter().next().unwrap()
    }

    fn json_of(message: &Message) -> Value {
        serde_json::from_slice(&message.value).unwrap()
    }

    #[test]
    fn json_object_is_enriched() {
        let input = message(
            Some("application/json"),
            br#"{"temperature_celsius": 25.0, "email": "Test@Example.COM",
                "latitude": 37.7749, "longitude": -122.4194, "sensor": "t1"}"#,
        );
        let output = single_output(process(input));
        let json = json_of(&output);
        assert_eq!(json["_processed"], true);
        assert_eq!(json["_processor_version"], "2.0.0");
        assert_eq!(json["temperature_fahrenheit"].as_f64(), Some(77.0));
        assert_eq!(json["email"], "test@example.com");
        assert_eq!(json["coordinate_string"], "37.774900,-122.419400");
        assert_eq!(json["sensor"], "t1");
        assert!(!output.value.contains(&b' '), "compact JSON expected");
        assert_eq!(output.key.as_deref(), Some("key"));
        assert_eq!(output.header("content_type_detected"), Some("application/json"));
        assert_eq!(output.header("content_size"), Some(output.value.len().to_string().as_str()));
        assert_eq!(output.header("processed_at"), Some("1700000000"));
        assert_eq!(output.header("processing_time"), Some("1700000000000"));
        assert_eq!(output.header("enriched"), Some("true"));
        assert_eq!(output.header("processor"), Some("message-processor"));
        assert_eq!(output.header("transformation"), None);
    }

    #[test]
    fn json_conversion_edge_cases() {
        let input = message(
            Some("application/json; charset=utf-8"),
            br#"{"temperature_celsius": 1e308, "email": "\u00C9MILE@X.FR", "latitude": "1"}"#,
        );
        let json = json_of(&single_output(process(input)));
        assert!(json.get("temperature_fahrenheit").is_none());
        assert!(json["temperature_conversion_error"].is_string());
        assert_eq!(json["email"], "émile@x.fr");
        assert!(json.get("coordinate_string").is_none());
    }

    #[test]
    fn json_transformations_can_be_disabled() {
        let processor = MessageProcessor::from_json(
            r#"{"transformation_config": {"enable_temperature_conversion": false,
                "enable_email_normalization": false, "enable_coordinate_formatting": false}}"#,
        )
        .unwrap();
        let input = message(
            Some("application/json"),
            br#"{"temperature_celsius": 20, "email": "A@B.C", "latitude": 1, "longitude": 2}"#,
        );
        let json = json_of(&single_output(processor.process_at(input, NOW_MS)));
        assert!(json.get("temperature_fahrenheit").is_none());
        assert_eq!(json["email"], "A@B.C");
        assert!(json.get("coordinate_string").is_none());
        assert_eq!(json["_processed"], true);
    }

    #[test]
    fn json_array_is_reserialized_without_fields() {
        let output = single_output(process(message(Some("application/json"), b"[1, 2]")));
        assert_eq!(output.value, b"[1,2]");
        assert_eq!(output.header("content_type_detected"), Some("text/plain"));
    }

    #[test]
    fn invalid_json_fails() {
        let result = process(message(Some("application/json"), b"{\"a\": "));
        assert!(result.transformed_messages.is_empty());
        assert!(!result.should_continue);
        assert!(result.error.unwrap().starts_with("invalid JSON payload: "));
    }

    #[test]
    fn text_is_uppercased() {
        let output = single_output(process(message(Some("text/plain"), b"hello the world")));
        assert_eq!(output.value, b"[PROCESSED] HELLO THE WORLD");
        assert_eq!(output.header("transformation"), Some("text_uppercase"));
        assert_eq!(output.header("original_length"), Some("15"));
        assert_eq!(output.header("content_type_detected"), Some("text/plain"));
        assert_eq!(output.header("content_language"), Some("en"));
        assert_eq!(output.header("content_size"), Some("27"));
    }

    #[test]
    fn non_ascii_text_is_uppercased() {
        let output = single_output(process(message(Some("text/plain"), "straße é".as_bytes())));
        assert_eq!(output.value, "[PROCESSED] STRASSE É".as_bytes());
        assert_eq!(output.header("original_length"), Some("10"));
    }

    #[test]
    fn invalid_utf8_text_fails() {
        let result = process(message(Some("text/plain"), b"\xff\xfe"));
        assert!(result.error.unwrap().starts_with("invalid UTF-8 text payload: "));
    }

    #[test]
    fn other_content_passes_through() {
        for content_type in [None, Some("application/octet-stream")] {
            let output = single_output(process(message(content_type, b"\x00\x01binary")));
            assert_eq!(output.value, b"\x00\x01binary");
            assert_eq!(output.header("transformation"), Some("passthrough"));
            assert_eq!(output.header("content_type_detected"), Some("text/plain"));
            assert_eq!(output.header("content_language"), Some("unknown"));
        }
        let output = single_output(process(message(None, b"\xff binary")));
        assert_eq!(output.header("content_type_detected"), Some("application/octet-stream"));
        assert_eq!(output.header("content_language"), Some("unknown"));
    }

    #[test]
    fn spam_is_filtered() {
        for value in [&b"This is SPAM content"[..], b"please Test-Delete", b"spam"] {
            assert_eq!(process(message(Some("text/plain"), value)), ProcessResult::filtered());
        }
        let ok = process(message(Some("text/plain"), b"spa-m test delete"));
        assert_eq!(ok.transformed_messages.len(), 1);
    }

    #[test]
    fn missing_required_header_is_filtered() {
        let mut input = message(Some("text/plain"), b"valid content");
        input.headers.remove("source");
        assert_eq!(process(input), ProcessResult::filtered());

        let processor = MessageProcessor::from_json(r#"{"filter_rules": {"required_headers": []}}"#)
            .unwrap();
        let mut input = message(Some("text/plain"), b"valid content");
        input.headers.clear();
        assert_eq!(processor.process_at(input, NOW_MS).transformed_messages.len(), 1);
    }

    #[test]
    fn oversize_is_filtered() {
        let limit = 1024 * 1024;
        let at_limit = vec![b'a'; limit];
        assert_eq!(process(message(None, &at_limit)).transformed_messages.len(), 1);
        let over_limit = vec![b'a'; limit + 1];
        assert_eq!(process(message(None, &over_limit)), ProcessResult::filtered());
    }

    #[test]
    fn old_message_is_filtered_in_milliseconds() {
        let hour_ms = 3_600_000;
        let just_in_time = message(None, b"x").with_timestamp(NOW_MS - hour_ms);
        assert_eq!(process(just_in_time).transformed_messages.len(), 1);
        let too_old = message(None, b"x").with_timestamp(NOW_MS - hour_ms - 1);
        assert_eq!(process(too_old), ProcessResult::filtered());
        let future = message(None, b"x").with_timestamp(i64::MAX);
        assert_eq!(process(future).transformed_messages.len(), 1);
        let ancient = message(None, b"x").with_timestamp(i64::MIN);
        assert_eq!(process(ancient), ProcessResult::filtered());
    }

    #[test]
    fn geolocation_from_client_ip() {
        assert_eq!(geolocate("192.168.1.1").0, "Local");
        assert_eq!(geolocate("10.0.0.1").2, "RFC1918");
        assert_eq!(geolocate("172.16.0.1").0, "Local");
        assert_eq!(geolocate("172.31.255.1").0, "Local");
        assert_eq!(geolocate("172.32.0.1").0, "Unknown");
        assert_eq!(geolocate("172.1.0.1").0, "Unknown");
        assert_eq!(geolocate("8.8.8.8"), ("US", "Mountain View", "California"));
        assert_eq!(geolocate("1.1.1.1"), ("US", "San Francisco", "California"));
        assert_eq!(geolocate("203.0.113.9"), ("Unknown", "Unknown", "Unknown"));

        let input = message(None, b"x").with_header("client_ip", "8.8.4.4");
        let output = single_output(process(input));
        assert_eq!(output.header("geo_city"), Some("Mountain View"));
        assert_eq!(single_output(process(message(None, b"x"))).header("geo_city"), None);
    }

    #[test]
    fn content_analysis() {
        let detect = |value: &[u8]| detect_content_type(value, Payload::Unknown).0;
        assert_eq!(detect(br#" {"test": true} "#), "application/json");
        assert_eq!(detect(br#"{"test": "#), "text/plain");
        assert_eq!(detect(b"\n <root><a>1</a></root>"), "application/xml");
        assert_eq!(detect(b"Hello world"), "text/plain");
        assert_eq!(detect(b"\xc3\x28"), "application/octet-stream");

        let processor = MessageProcessor::default();
        assert_eq!(processor.detect_language(b"Hello world, this IS a test"), "en");
        assert_eq!(processor.detect_language(b"hola, EL mundo"), "es");
        assert_eq!(processor.detect_language(b"Bonjour le monde"), "fr");
        assert_eq!(processor.detect_language(b"c'est la vie"), "es");
        assert_eq!(processor.detect_language(b"the"), "unknown");
    }

    #[test]
    fn enrichment_can_be_disabled() {
        let processor = MessageProcessor::from_json(
            r#"{"enrichment_config": {"enable_geolocation": false,
                "enable_language_detection": false}}"#,
        )
        .unwrap();
        let input = message(None, b"x").with_header("client_ip", "8.8.8.8");
        let output = single_output(processor.process_at(input, NOW_MS));
        assert_eq!(output.header("geo_country"), None);
        assert_eq!(output.header("content_language"), None);
        assert_eq!(output.header("content_size"), Some("1"));

        let processor = MessageProcessor::from_json(
            r#"{"enrichment_config": {"enable_content_analysis": false}}"#,
        )
        .unwrap();
        let output = single_output(processor.process_at(message(None, b"x"), NOW_MS));
        assert_eq!(output.header("content_size"), None);
        assert_eq!(output.header("content_language"), None);
    }
}
