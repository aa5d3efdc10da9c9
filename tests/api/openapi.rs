//! `/openapi.json` says what the server does: every error is an
//! `application/problem+json` `Problem`, the statuses the pipeline and the
//! extractors answer are listed, and the bounds the handlers enforce are in the
//! schema. (`scripts/check-api.sh` holds the server to it with schemathesis.)

use flashcore_tests::TestApp;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn document(app: &TestApp) -> Value {
    app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap()
}

/// Every `(METHOD path, operation)` of the document.
fn operations(doc: &Value) -> Vec<(String, &Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ops.push((format!("{} {path}", method.to_uppercase()), op));
        }
    }
    ops
}

fn param<'a>(op: &'a Value, name: &str) -> &'a Value {
    op["parameters"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{name}"))
}

#[tokio::test]
async fn the_openapi_document_declares_every_error_as_a_problem_document() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let doc = document(&app).await;

    // Assert
    let mut wrong = Vec::new();
    for (op_name, op) in operations(&doc) {
        for (status, res) in op["responses"].as_object().unwrap() {
            if status.as_str() < "400" {
                continue;
            }
            let content = res["content"].as_object().unwrap();
            let problem = json!({ "schema": { "$ref": "#/components/schemas/Problem" } });
            if content.len() != 1 || content.get("application/problem+json") != Some(&problem) {
                wrong.push(format!("{op_name} {status}: {}", Value::Object(content.clone())));
            }
        }
    }
    assert!(wrong.is_empty(), "errors not documented as problems:\n{}", wrong.join("\n"));
    app.stop().await;
}

#[tokio::test]
async fn the_openapi_document_lists_what_the_pipeline_and_the_extractors_answer() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let doc = document(&app).await;

    // Assert
    for (op_name, op) in operations(&doc) {
        let statuses: Vec<&str> = op["responses"].as_object().unwrap().keys().map(String::as_str).collect();
        let api = op_name.contains(" /v1/");
        let write = ["PUT ", "POST ", "DELETE "].iter().any(|m| op_name.starts_with(m));
        let mut expected = vec!["500", "503"];
        if api {
            expected.extend(["401", "429"]);
        }
        if op.get("requestBody").is_some() {
            expected.extend(["400", "413", "415", "422"]);
        }
        if api && write {
            expected.extend(["400", "409", "413", "422"]);
            let key = param(op, "Idempotency-Key");
            assert_eq!(key["schema"]["pattern"], "^[!-~]{1,255}$", "{op_name}");
            assert_eq!(key["schema"]["maxLength"], 255, "{op_name}");
        }
        for status in expected {
            assert!(statuses.contains(&status), "{op_name} does not list {status}: {statuses:?}");
        }
    }
    let checkout = &doc["paths"]["/v1/carts/{cart_id}/checkout"]["post"];
    assert_eq!(param(checkout, "Idempotency-Key")["required"], true);
    app.stop().await;
}

#[tokio::test]
async fn the_openapi_document_states_the_bounds_the_server_enforces() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let doc = document(&app).await;

    // Assert
    let limit = |path: &str| param(&doc["paths"][path]["get"], "limit")["schema"].clone();
    assert_eq!(
        (limit("/v1/products")["minimum"].clone(), limit("/v1/products")["maximum"].clone()),
        (json!(1), json!(100))
    );
    assert_eq!(
        (limit("/v1/admin/orders")["minimum"].clone(), limit("/v1/admin/orders")["maximum"].clone()),
        (json!(1), json!(500))
    );
    let schemas = &doc["components"]["schemas"];
    let title = &schemas["ProductBody"]["properties"]["title"];
    assert_eq!((title["minLength"].clone(), title["maxLength"].clone()), (json!(1), json!(200)));
    let name = &schemas["NewKeyBody"]["properties"]["name"];
    assert_eq!((name["minLength"].clone(), name["maxLength"].clone()), (json!(1), json!(100)));
    let stock = schemas["StockBody"]["oneOf"].as_array().unwrap();
    let required: Vec<&Value> = stock.iter().map(|s| &s["required"]).collect();
    assert_eq!(required, [&json!(["restock"]), &json!(["set_total"])], "exactly one of restock / set_total");
    app.stop().await;
}

#[tokio::test]
async fn a_whole_number_written_as_a_float_is_read_as_that_integer() {
    // Arrange: JSON Schema (and so the document) counts `1.0` as the integer 1.
    let app = TestApp::spawn().await;
    let cart = app.new_cart().await;

    // Act
    let whole = app
        .client
        .put(app.url(&cart.path("/items/TSHIRT-BLACK")))
        .bearer_auth(&cart.token)
        .json(&json!({ "quantity": 1.0 }))
        .send()
        .await
        .unwrap();
    let fraction = app
        .client
        .put(app.url(&cart.path("/items/TSHIRT-BLACK")))
        .bearer_auth(&cart.token)
        .json(&json!({ "quantity": 1.5 }))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(fraction.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(cart.get().await["lines"][0]["quantity"], 1);
    app.stop().await;
}
