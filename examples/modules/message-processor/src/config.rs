//! The module's configuration, read from the pipeline's `custom_config` JSON.
//!
//! Every field is optional: a missing field keeps its default, unknown fields are ignored.

use serde::Deserialize;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct EtlConfig {
    /// Which messages are dropped.
    pub filter_rules: FilterRules,
    /// Which enrichment headers are added.
    pub enrichment_config: EnrichmentConfig,
    /// Which JSON payload fields are derived.
    pub transformation_config: TransformationConfig,
}

impl EtlConfig {
    /// Parses the configuration JSON; `null` means all defaults.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str::<Option<EtlConfig>>(json).map(Option::unwrap_or_default)
    }
}

/// Rules that drop a message (no output, not an error).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct FilterRules {
    /// Payloads containing any of these (ASCII case-insensitive) are dropped; empty keywords
    /// are ignored.
    pub spam_keywords: Vec<String>,
    /// Payloads longer than this many bytes are dropped.
    pub max_message_size: u64,
    /// Messages whose timestamp is more than this many seconds in the past are dropped.
    pub max_age_seconds: u64,
    /// Messages missing any of these headers are dropped.
    pub required_headers: Vec<String>,
}

impl Default for FilterRules {
    fn default() -> Self {
        FilterRules {
            spam_keywords: vec!["spam".to_string(), "test-delete".to_string()],
            max_message_size: 1024 * 1024,
            max_age_seconds: 3600,
            required_headers: vec!["source".to_string()],
        }
    }
}

/// Optional enrichment headers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct EnrichmentConfig {
    /// `geo_country`, `geo_city`, `geo_region` from the `client_ip` header.
    pub enable_geolocation: bool,
    /// `content_size` and `content_type_detected`.
    pub enable_content_analysis: bool,
    /// `content_language` (only together with content analysis).
    pub enable_language_detection: bool,
}

impl Default for EnrichmentConfig {
    fn default() -> Self {
        EnrichmentConfig {
            enable_geolocation: true,
            enable_content_analysis: true,
            enable_language_detection: true,
        }
    }
}

/// Optional derived fields in JSON object payloads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct TransformationConfig {
    /// `temperature_fahrenheit` from `temperature_celsius`.
    pub enable_temperature_conversion: bool,
    /// `email` lower-cased.
    pub enable_email_normalization: bool,
    /// `coordinate_string` from `latitude` and `longitude`.
    pub enable_coordinate_formatting: bool,
}

impl Default for TransformationConfig {
    fn default() -> Self {
        TransformationConfig {
            enable_temperature_conversion: true,
            enable_email_normalization: true,
            enable_coordinate_formatting: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_object_and_null_give_defaults() {
        assert_eq!(EtlConfig::from_json("{}").unwrap(), EtlConfig::default());
        assert_eq!(EtlConfig::from_json("null").unwrap(), EtlConfig::default());
    }

    #[test]
    fn partial_config_keeps_other_defaults() {
        let config = EtlConfig::from_json(
            r#"{"filter_rules": {"max_age_seconds": 60, "spam_keywords": ["buy now"]},
                "enrichment_config": {"enable_geolocation": false},
                "unrelated": 1}"#,
        )
        .unwrap();
        assert_eq!(config.filter_rules.max_age_seconds, 60);
        assert_eq!(config.filter_rules.spam_keywords, ["buy now"]);
        assert_eq!(config.filter_rules.required_headers, ["source"]);
        assert_eq!(config.filter_rules.max_message_size, 1024 * 1024);
        assert!(!config.enrichment_config.enable_geolocation);
        assert!(config.enrichment_config.enable_content_analysis);
        assert_eq!(config.transformation_config, TransformationConfig::default());
    }

    #[test]
    fn invalid_config_is_an_error() {
        assert!(EtlConfig::from_json("{not json").is_err());
        assert!(EtlConfig::from_json(r#"{"filter_rules": {"max_age_seconds": -1}}"#).is_err());
        assert!(EtlConfig::from_json(r#"{"filter_rules": {"spam_keywords": "spam"}}"#).is_err());
        assert!(EtlConfig::from_json("[]").is_err());
    }
}
