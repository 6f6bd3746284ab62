//! Every format in `sift::sources::registry` is reachable over every transport that carries
//! it: over HTTP at its route (its example body is stored, and the route is in the OpenAPI
//! document), and as a Kafka topic's `format` (the config takes its name, and the Kafka
//! decoder parses its example; tests/kafka.rs consumes every example from a mock cluster).
//! A format added to the registry is covered without editing this file.

mod common;

use chrono::Utc;
use common::{Backend, Db, Method, Sift};
use sift::config::Config;
use sift::sources::Normalize;
use sift::sources::kafka::{Origin, decode};
use sift::sources::registry::{self, FORMATS};

#[tokio::test]
async fn every_registered_format_is_reachable_over_http() {
    let db = Db::new(Backend::Sqlite).await.expect("sqlite");
    let s = Sift::spawn_app(&db, &[]);
    let doc = serde_json::to_value(sift::api::openapi_document()).expect("document");
    let mut routes = 0;
    for (format, intake) in registry::http() {
        routes += 1;
        let r = s.raw(Method::POST, intake.path, format.example).await;
        assert!(
            (200..300).contains(&r.status),
            "{} at POST {}: {} {}",
            format.name,
            intake.path,
            r.status,
            r.text
        );
        assert!(
            doc["paths"][intake.path]["post"].is_object(),
            "POST {} is not in the OpenAPI document",
            intake.path
        );
        let r = s.raw(Method::POST, intake.path, "{").await;
        assert_eq!(
            r.status, 400,
            "{} refuses a bad body: {}",
            format.name, r.text
        );
    }
    assert!(routes >= 3, "only {routes} formats have an HTTP route");
    let alerts = s.alerts().await;
    assert_eq!(alerts.len(), routes, "one alert per format: {alerts:?}");
}

#[test]
fn every_registered_format_is_a_kafka_topic_format() {
    let dir = std::env::temp_dir().join(format!("sift-formats-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for format in FORMATS {
        let file = dir.join(format!("{}.toml", format.name));
        std::fs::write(
            &file,
            format!(
                "[kafka]\nbrokers = \"127.0.0.1:9092\"\ntopics = [{{ name = \"t\", format = \"{}\" }}]\n",
                format.name
            ),
        )
        .expect("write config");
        let c = Config::load_from(Some(&file), &[])
            .unwrap_or_else(|e| panic!("format = {:?}: {e}", format.name));
        let topic_format = c.kafka.topics[0].format;
        assert_eq!(topic_format.as_str(), format.name);
        let origin = Origin {
            topic: "t".into(),
            partition: 0,
            offset: 1,
        };
        let alerts = decode(
            topic_format,
            Some(format.example.as_bytes()),
            &origin,
            &Normalize::default().at(Utc::now()),
            1024 * 1024,
        )
        .unwrap_or_else(|e| panic!("{} over Kafka: {e}", format.name));
        assert_eq!(alerts.len(), 1, "{} over Kafka", format.name);
    }
    std::fs::remove_dir_all(&dir).ok();
    let e = Config::load_from(
        None,
        &[(
            "SIFT_KAFKA__TOPICS".into(),
            r#"[{"name":"t","format":"avro"}]"#.into(),
        )],
    )
    .unwrap_err()
    .to_string();
    for name in registry::names() {
        assert!(e.contains(name), "the error lists {name}: {e}");
    }
}
