//! Flagsmith-style pages: `?page=N&page_size=M` in, `{count, next, previous, results}` out.

use axum::http::Uri;
use flagstone_store::{Page, PageRequest};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PageParams {
    /// Page number, from 1.
    pub page: Option<i64>,
    /// Results per page (default 100, at most 1000).
    pub page_size: Option<i64>,
}

impl PageParams {
    pub fn request(&self) -> PageRequest {
        PageRequest::new(self.page.unwrap_or(1), self.page_size.unwrap_or(100))
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Paginated<T> {
    pub count: i64,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<T>,
}

/// Builds the page links from the request's own path and query.
pub fn paginate<T>(uri: &Uri, req: PageRequest, page: Page<T>) -> Paginated<T> {
    let link = |n: i64| {
        let mut pairs: Vec<String> = uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("page=") && !p.starts_with("page_size="))
            .map(str::to_string)
            .collect();
        pairs.push(format!("page={n}"));
        pairs.push(format!("page_size={}", req.page_size));
        format!("{}?{}", uri.path(), pairs.join("&"))
    };
    let next =
        (req.offset() + (page.results.len() as i64) < page.count).then(|| link(req.page + 1));
    let previous = (req.page > 1).then(|| link(req.page - 1));
    Paginated {
        count: page.count,
        next,
        previous,
        results: page.results,
    }
}
