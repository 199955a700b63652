//! How the push control reaches Clarion: through the page's server functions on
//! Clarion's own page, or through the public REST API at Clarion's origin from any other
//! site (the SDK). Both end in the same core operations on the server.

#[cfg(feature = "sdk")]
use crate::browser;
use crate::browser::BrowserError;
use crate::domain::{SubscriptionJson, TestPushResult, Topic};
use web_sys::PushSubscription;

/// Where the control's calls go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// Clarion's own page: the server functions under `/api/fn`.
    #[cfg(feature = "hydrate")]
    ServerFunctions,
    /// Another site's page: the REST API of its site at Clarion's origin, `api`
    /// (`https://push.example.com/api/v1` for `default`, which answers the origins of
    /// `CLARION_CORS_ORIGINS`; `…/api/v1/sites/shop` for the site `shop`, which answers
    /// its own origins).
    #[cfg(feature = "sdk")]
    Rest { api: String },
}

type Result<T> = std::result::Result<T, BrowserError>;

impl Backend {
    /// Clarion's VAPID public key, base64url.
    pub async fn vapid_public_key(&self) -> Result<String> {
        match self {
            #[cfg(feature = "hydrate")]
            Backend::ServerFunctions => Ok(crate::api::vapid_public_key().await?),
            #[cfg(feature = "sdk")]
            Backend::Rest { api } => {
                rest::call(api, rest::Method::Get, "/vapid-public-key", None).await.and_then(|key| rest::read(key, "public_key"))
            }
        }
    }

    /// The topics the site offers.
    pub async fn topics(&self) -> Result<Vec<Topic>> {
        match self {
            #[cfg(feature = "hydrate")]
            Backend::ServerFunctions => Ok(crate::api::topics().await?),
            #[cfg(feature = "sdk")]
            Backend::Rest { api } => rest::call(api, rest::Method::Get, "/topics", None).await.map(|answer| rest::topics(&answer)),
        }
    }

    /// Stores (or refreshes) a subscription; answers the topics it has now.
    pub async fn save(
        &self,
        subscription: &PushSubscription,
        json: &SubscriptionJson,
        topics: Option<Vec<String>>,
        user_token: Option<String>,
    ) -> Result<Vec<String>> {
        match self {
            #[cfg(feature = "hydrate")]
            Backend::ServerFunctions => {
                let _ = subscription;
                Ok(crate::api::save_subscription(json.clone(), topics, user_token).await?.topics)
            }
            #[cfg(feature = "sdk")]
            Backend::Rest { api } => {
                let _ = json;
                // The browser's own `toJSON()`, plus the audience members.
                let body: wasm_bindgen::JsValue = subscription.to_json()?.into();
                if let Some(topics) = topics {
                    let _ = js_sys::Reflect::set(&body, &"topics".into(), &browser::string_array(&topics));
                }
                if let Some(token) = user_token {
                    let _ = js_sys::Reflect::set(&body, &"user_token".into(), &token.into());
                }
                rest::call(api, rest::Method::Post, "/subscriptions", Some(body))
                    .await
                    .map(|saved| browser::strings_member(&saved, "topics"))
            }
        }
    }

    /// Replaces the old subscription (`old_endpoint`, proven by its `auth`) with the
    /// browser's new one, which takes over its topics and user; answers the topics.
    /// `None`: Clarion does not have the old one (then save the new one instead).
    pub async fn renew(
        &self,
        old_endpoint: String,
        old_auth: String,
        subscription: &PushSubscription,
        json: &SubscriptionJson,
    ) -> Result<Option<Vec<String>>> {
        match self {
            #[cfg(feature = "hydrate")]
            Backend::ServerFunctions => {
                let _ = subscription;
                Ok(crate::api::renew_subscription(old_endpoint, old_auth, json.clone()).await?)
            }
            #[cfg(feature = "sdk")]
            Backend::Rest { api } => {
                let _ = json;
                let old = browser::object(&[("endpoint", old_endpoint.into()), ("auth", old_auth.into())]);
                let body = browser::object(&[("old", old), ("subscription", subscription.to_json()?.into())]);
                let response = rest::send(api, rest::Method::Post, "/subscriptions/renew", Some(body), 404).await?;
                if response.status() == 404 {
                    return Ok(None);
                }
                let text = response.text().await.map_err(|e| BrowserError(e.to_string()))?;
                Ok(Some(browser::strings_member(&js_sys::JSON::parse(&text)?, "topics")))
            }
        }
    }

    /// Replaces a subscription's topics, proving it is ours with its `auth` secret.
    pub async fn save_topics(&self, endpoint: String, auth: String, topics: Vec<String>) -> Result<Vec<String>> {
        match self {
            #[cfg(feature = "hydrate")]
            Backend::ServerFunctions => Ok(crate::api::save_topics(endpoint, auth, topics).await?),
            #[cfg(feature = "sdk")]
            Backend::Rest { api } => {
                let body =
                    browser::object(&[("endpoint", endpoint.into()), ("auth", auth.into()), ("topics", browser::string_array(&topics))]);
                rest::call(api, rest::Method::Put, "/subscriptions/topics", Some(body))
                    .await
                    .map(|chosen| browser::strings_member(&chosen, "topics"))
            }
        }
    }

    /// Deletes a subscription, proving it is ours with its `auth` secret; one Clarion does
    /// not have is not an error.
    pub async fn delete(&self, endpoint: String, auth: String) -> Result<()> {
        match self {
            #[cfg(feature = "hydrate")]
            Backend::ServerFunctions => crate::api::delete_subscription(endpoint, auth).await.map(|_| ()).map_err(BrowserError::from),
            #[cfg(feature = "sdk")]
            Backend::Rest { api } => {
                let body = browser::object(&[("endpoint", endpoint.into()), ("auth", auth.into())]);
                rest::send(api, rest::Method::Delete, "/subscriptions", Some(body), 404).await.map(|_| ())
            }
        }
    }

    /// Unbinds a subscription from its signed-in user (sign-out), proving it is ours.
    pub async fn sign_out(&self, endpoint: String, auth: String) -> Result<()> {
        match self {
            #[cfg(feature = "hydrate")]
            Backend::ServerFunctions => Ok(crate::api::sign_out(endpoint, auth).await?),
            #[cfg(feature = "sdk")]
            Backend::Rest { api } => {
                let body = browser::object(&[("endpoint", endpoint.into()), ("auth", auth.into())]);
                rest::send(api, rest::Method::Post, "/subscriptions/sign-out", Some(body), 204).await.map(|_| ())
            }
        }
    }

    /// Pushes a test notification to one's own subscription.
    pub async fn send_test(&self, endpoint: String, auth: String) -> Result<TestPushResult> {
        match self {
            #[cfg(feature = "hydrate")]
            Backend::ServerFunctions => Ok(crate::api::send_test_notification(endpoint, auth).await?),
            #[cfg(feature = "sdk")]
            Backend::Rest { api } => {
                let body = browser::object(&[("endpoint", endpoint.into()), ("auth", auth.into())]);
                let answer = rest::call(api, rest::Method::Post, "/subscriptions/test", Some(body)).await?;
                Ok(match browser::member(&answer, "outcome").as_string().as_deref() {
                    Some("delivered") => TestPushResult::Delivered,
                    Some("gone") => TestPushResult::Gone,
                    _ => TestPushResult::Failed { reason: browser::string_member(&answer, "reason").unwrap_or_default() },
                })
            }
        }
    }
}

#[cfg(feature = "hydrate")]
impl From<crate::api::ApiFailure> for BrowserError {
    fn from(e: crate::api::ApiFailure) -> Self {
        BrowserError(e.error)
    }
}

#[cfg(feature = "sdk")]
mod rest {
    //! Calls to Clarion's REST API from another site's page: no cookies, JSON both ways
    //! through the browser's own `JSON`, and Clarion's own words when it refuses.

    use crate::browser::{self, BrowserError};
    use crate::domain::Topic;
    use gloo_net::http::{RequestBuilder, Response};
    use wasm_bindgen::JsValue;
    use web_sys::RequestCredentials;

    pub enum Method {
        Get,
        Post,
        Put,
        Delete,
    }

    /// Calls `path` under the site's API (`api`) and reads the JSON answer.
    pub async fn call(api: &str, method: Method, path: &str, body: Option<JsValue>) -> Result<JsValue, BrowserError> {
        let response = send(api, method, path, body, 0).await?;
        parse(&response).await.map_err(|e| BrowserError(format!("Clarion's answer to {path} was not JSON: {e}")))
    }

    async fn parse(response: &Response) -> Result<JsValue, BrowserError> {
        let text = response.text().await.map_err(|e| BrowserError(e.to_string()))?;
        Ok(js_sys::JSON::parse(&text)?)
    }

    /// `answer[name]` as a string, or an error naming what Clarion left out.
    pub fn read(answer: JsValue, name: &str) -> Result<String, BrowserError> {
        browser::string_member(&answer, name).map_err(|_| BrowserError(format!("Clarion's answer has no {name}")))
    }

    /// `{"topics": [{name, label, description, default}]}`.
    pub fn topics(answer: &JsValue) -> Vec<Topic> {
        let list = browser::member(answer, "topics");
        if !js_sys::Array::is_array(&list) {
            return Vec::new();
        }
        js_sys::Array::from(&list)
            .iter()
            .filter_map(|topic| {
                Some(Topic {
                    name: browser::member(&topic, "name").as_string()?,
                    label: browser::member(&topic, "label").as_string()?,
                    description: browser::member(&topic, "description").as_string().unwrap_or_default(),
                    default: browser::member(&topic, "default").as_bool().unwrap_or(false),
                })
            })
            .collect()
    }

    /// Calls `path` under the site's API (`api`); a status outside 2xx (and `also_fine`)
    /// is an error in Clarion's words.
    pub async fn send(api: &str, method: Method, path: &str, body: Option<JsValue>, also_fine: u16) -> Result<Response, BrowserError> {
        let url = format!("{api}{path}");
        let method = match method {
            Method::Get => gloo_net::http::Method::GET,
            Method::Post => gloo_net::http::Method::POST,
            Method::Put => gloo_net::http::Method::PUT,
            Method::Delete => gloo_net::http::Method::DELETE,
        };
        let builder = RequestBuilder::new(&url).method(method).credentials(RequestCredentials::Omit);
        let request = match body {
            Some(body) => builder.header("Content-Type", "application/json").body(browser::json_text(&body, 0)?),
            None => builder.build(),
        }
        .map_err(|e| BrowserError(e.to_string()))?;
        let response = request.send().await.map_err(|e| unreachable(api, e))?;
        let status = response.status();
        if response.ok() || status == also_fine {
            return Ok(response);
        }
        let reason = parse(&response)
            .await
            .ok()
            .and_then(|refusal| browser::member(&refusal, "error").as_string())
            .unwrap_or_else(|| response.status_text());
        Err(BrowserError(format!("Clarion refused ({status}): {reason}")))
    }

    /// A request the browser could not complete: Clarion is down, or (the usual cause on
    /// a new site) it does not grant this site CORS.
    fn unreachable(api: &str, e: gloo_net::Error) -> BrowserError {
        let site = web_sys::window().and_then(|w| w.location().origin().ok()).unwrap_or_default();
        BrowserError(format!(
            "could not reach Clarion at {api} ({e}). Check that it is running and that the site's origins (CLARION_CORS_ORIGINS for default) list this page's, {site}"
        ))
    }
}
