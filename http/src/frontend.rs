//! The storefront (`/`) and the operator console (`/ops`): the built frontend
//! (`frontend/dist`, made by `npm run build`), served from its directory.
//!
//! A `GET`/`HEAD` that no API route matched is answered from here: a path whose
//! last segment has an extension is a file of the build (404 problem if there
//! is none), any other path is a route of the single-page app and gets its
//! `index.html`. Vite names everything under `assets/` by its content hash, so
//! those are cached for a year; everything else is revalidated. The pages get
//! a content security policy that allows their own origin only: no inline
//! script or style, no CDN, no framing.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

use crate::error::ApiError;
use crate::headers::PAGE_CSP;

/// Hashed build output: never changes under its name.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `index.html` and unhashed files: revalidate every time.
const REVALIDATE: &str = "no-cache";

/// True if `dir` holds a build (its `index.html`).
pub fn holds_build(dir: &Path) -> bool {
    dir.join("index.html").is_file()
}

/// Marks a response the frontend served, so the metrics name its route `frontend`.
#[derive(Debug, Clone, Copy)]
pub struct Served;

/// A built frontend in a directory.
#[derive(Debug, Clone)]
pub struct Frontend {
    dir: PathBuf,
}

impl Frontend {
    /// The frontend in `dir`, which must hold an `index.html`.
    pub fn open(dir: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let dir = dir.into();
        anyhow::ensure!(
            holds_build(&dir),
            "no frontend build in {} (index.html is missing; run `npm ci && npm run build` in frontend/)",
            dir.display()
        );
        Ok(Frontend { dir })
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Answers `req`, or `None` if it is not for the frontend (not `GET`/`HEAD`,
    /// or under `/v1/`).
    pub async fn answer(&self, req: Request) -> Option<Response> {
        if !matches!(*req.method(), Method::GET | Method::HEAD) || req.uri().path().starts_with("/v1/") {
            return None;
        }
        let path = req.uri().path();
        let asset = path.starts_with("/assets/");
        let file = path.rsplit('/').next().is_some_and(|last| last.contains('.'));
        let res = if file {
            ServeDir::new(&self.dir).oneshot(req).await.map(|r| r.map(Body::new))
        } else {
            ServeFile::new(self.dir.join("index.html")).oneshot(req).await.map(|r| r.map(Body::new))
        };
        let mut res = match res {
            Ok(res) if res.status().is_success() || res.status() == StatusCode::NOT_MODIFIED => res,
            Ok(res) if res.status() == StatusCode::NOT_FOUND => {
                return Some(ApiError::not_found("not-found", "No such file in the frontend.").into_response());
            }
            Ok(res) => res,
            Err(never) => match never {},
        };
        let h = res.headers_mut();
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(if asset { IMMUTABLE } else { REVALIDATE }));
        Some(res)
    }
}
