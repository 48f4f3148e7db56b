//! The admin API: who may call it, upload limits, streamed bodies, and each route's JSON.

use crate::mem::{Failure, MemBackend, TOKEN};
use crate::*;
use axum::extract::ConnectInfo;
use shubnet_gateway::backend::{AddOutcome, CarImportOutcome, GcReport, PinInfo, RepairReport};
use std::io;
use std::net::SocketAddr;

const AUTH: (&str, &str) = ("authorization", "Bearer secret-admin-token");

fn app_with(backend: &MemBackend, config: GatewayConfig) -> Router {
    shubnet_gateway::app(backend.clone(), config)
}

fn from_peer(mut req: Request<Body>, peer: &str) -> Request<Body> {
    let addr: SocketAddr = peer.parse().expect("socket address");
    req.extensions_mut().insert(ConnectInfo(addr));
    req
}

fn upload(uri: &str, body: Body, headers: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::builder().method("POST").uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(body).expect("request")
}

fn json<T: serde::de::DeserializeOwned>(r: &Reply) -> T {
    serde_json::from_slice(&r.body).expect("JSON reply")
}

#[tokio::test]
async fn every_route_needs_the_token() {
    let backend = MemBackend::new(deep_layout());
    let cid = backend.import(b"x").root;
    for (method, path) in [
        ("POST", "/admin/v1/add".to_string()),
        ("POST", "/admin/v1/car/import".to_string()),
        ("GET", "/admin/v1/pins".to_string()),
        ("PUT", format!("/admin/v1/pins/{cid}")),
        ("DELETE", format!("/admin/v1/pins/{cid}")),
        ("POST", "/admin/v1/gc".to_string()),
        ("POST", "/admin/v1/repair".to_string()),
    ] {
        for headers in [
            vec![],
            vec![("authorization", "Bearer wrong")],
            vec![("authorization", "Basic c2VjcmV0LWFkbWluLXRva2Vu")],
            vec![("authorization", TOKEN)],
        ] {
            let r = send(app(&backend), request(method, &path, &headers)).await;
            assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {headers:?}"
            );
            assert_eq!(r.header("www-authenticate"), "Bearer");
            assert!(r.error().contains("token"));
        }
    }
    assert_eq!(backend.add_calls(), 0);
}

#[tokio::test]
async fn remote_peers_are_refused_unless_allowed() {
    let backend = MemBackend::new(deep_layout());
    for peer in ["192.0.2.7:5000", "[2001:db8::1]:443"] {
        let req = from_peer(request("GET", "/admin/v1/pins", &[AUTH]), peer);
        let r = send(app(&backend), req).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{peer}");
        assert!(r.error().contains("local"));
        // A remote caller learns nothing about the token either.
        let req = from_peer(request("GET", "/admin/v1/pins", &[]), peer);
        assert_eq!(send(app(&backend), req).await.status, StatusCode::FORBIDDEN);
    }
    for peer in ["127.0.0.1:1", "[::1]:2", "[::ffff:127.0.0.1]:3"] {
        let req = from_peer(request("GET", "/admin/v1/pins", &[AUTH]), peer);
        assert_eq!(
            send(app(&backend), req).await.status,
            StatusCode::OK,
            "{peer}"
        );
    }
    let open = GatewayConfig {
        allow_remote_admin: true,
        ..GatewayConfig::default()
    };
    let req = from_peer(request("GET", "/admin/v1/pins", &[AUTH]), "192.0.2.7:5000");
    assert_eq!(
        send(app_with(&backend, open.clone()), req).await.status,
        StatusCode::OK
    );
    let req = from_peer(request("GET", "/admin/v1/pins", &[]), "192.0.2.7:5000");
    assert_eq!(
        send(app_with(&backend, open), req).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn add_streams_the_body_and_the_file_is_served() {
    let backend = MemBackend::new(deep_layout());
    let data = distinct_data(1000);
    let chunks: Vec<Result<Bytes, io::Error>> = data
        .chunks(97)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let body = Body::from_stream(futures::stream::iter(chunks));
    let r = send(app(&backend), upload("/admin/v1/add", body, &[AUTH])).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let out: AddOutcome = json(&r);
    assert_eq!(out.size, 1000);
    assert!(out.pinned);
    assert_eq!(
        out.cid.to_string(),
        crate::mem::chunk(&data, deep_layout()).root.to_string()
    );
    let g = get(&backend, &format!("/ipfs/{}", out.cid), &[]).await;
    assert_eq!(g.body.as_ref(), data.as_slice());
}

#[tokio::test]
async fn declared_oversize_is_413_before_the_backend_is_called() {
    let backend = MemBackend::new(deep_layout());
    let config = GatewayConfig {
        max_upload_bytes: 100,
        ..GatewayConfig::default()
    };
    for path in ["/admin/v1/add", "/admin/v1/car/import"] {
        let req = upload(
            path,
            Body::from(vec![0u8; 101]),
            &[AUTH, ("content-length", "101")],
        );
        let r = send(app_with(&backend, config.clone()), req).await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        assert!(r.error().contains("100 bytes"), "{}", r.error());
    }
    assert_eq!(backend.add_calls(), 0);
    assert!(backend.stream_errors().is_empty());
    // Exactly at the limit is fine.
    let req = upload("/admin/v1/add", Body::from(vec![7u8; 100]), &[AUTH]);
    let r = send(app_with(&backend, config), req).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn undeclared_oversize_is_cut_mid_stream_and_413() {
    let backend = MemBackend::new(deep_layout());
    let config = GatewayConfig {
        max_upload_bytes: 100,
        ..GatewayConfig::default()
    };
    let chunks: Vec<Result<Bytes, io::Error>> =
        (0..5).map(|_| Ok(Bytes::from(vec![1u8; 30]))).collect();
    let body = Body::from_stream(futures::stream::iter(chunks));
    let before = backend.block_count();
    let r = send(
        app_with(&backend, config),
        upload("/admin/v1/add", body, &[AUTH]),
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(backend.add_calls(), 1);
    let errors = backend.stream_errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, io::ErrorKind::FileTooLarge);
    assert_eq!(backend.block_count(), before, "nothing partial was stored");
}

#[tokio::test]
async fn a_body_that_fails_reaches_the_backend_as_an_io_error() {
    let backend = MemBackend::new(deep_layout());
    let chunks: Vec<Result<Bytes, io::Error>> = vec![
        Ok(Bytes::from_static(b"first part")),
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    ];
    let body = Body::from_stream(futures::stream::iter(chunks));
    let r = send(app(&backend), upload("/admin/v1/add", body, &[AUTH])).await;
    // The mem backend reports an interrupted upload as invalid input.
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let errors = backend.stream_errors();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].1.contains("client went away"), "{:?}", errors[0]);
}

#[tokio::test]
async fn pins_list_add_and_remove() {
    let backend = MemBackend::new(deep_layout());
    let a = backend.import(&distinct_data(50)).root;
    let b = backend.import(&distinct_data(60)).root;
    let r = send(app(&backend), request("GET", "/admin/v1/pins", &[AUTH])).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(json::<Vec<PinInfo>>(&r).is_empty());

    for cid in [a, b] {
        let r = send(
            app(&backend),
            request("PUT", &format!("/admin/v1/pins/{cid}"), &[AUTH]),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        let v: serde_json::Value = json(&r);
        assert_eq!(v["cid"], cid.to_string());
        assert_eq!(v["pinned"], true);
    }
    let r = send(app(&backend), request("GET", "/admin/v1/pins", &[AUTH])).await;
    let mut pins = json::<Vec<PinInfo>>(&r);
    pins.sort_by_key(|p| p.size);
    assert_eq!(
        pins,
        vec![PinInfo { cid: a, size: 50 }, PinInfo { cid: b, size: 60 },]
    );
    let r = send(
        app(&backend),
        request("DELETE", &format!("/admin/v1/pins/{a}"), &[AUTH]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(json::<serde_json::Value>(&r)["pinned"], false);
    let r = send(
        app(&backend),
        request("DELETE", &format!("/admin/v1/pins/{a}"), &[AUTH]),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.error().contains("not pinned"));

    let r = send(
        app(&backend),
        request("PUT", "/admin/v1/pins/garbage", &[AUTH]),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.error().contains("not a valid CID"));
}

#[tokio::test]
async fn gc_and_repair_reports() {
    let backend = MemBackend::new(deep_layout());
    let kept = backend.import(&distinct_data(30)).root;
    let dropped = backend.import(&distinct_data(31)).root;
    send(
        app(&backend),
        request("PUT", &format!("/admin/v1/pins/{kept}"), &[AUTH]),
    )
    .await;
    let r = send(app(&backend), request("POST", "/admin/v1/gc", &[AUTH])).await;
    assert_eq!(r.status, StatusCode::OK);
    let report: GcReport = json(&r);
    let removed: Vec<String> = report.removed.iter().map(ToString::to_string).collect();
    assert_eq!(removed, vec![dropped.to_string()]);
    assert_eq!(report.freed_bytes, 31);
    let r = send(app(&backend), request("POST", "/admin/v1/repair", &[AUTH])).await;
    assert_eq!(r.status, StatusCode::OK);
    let report: RepairReport = json(&r);
    assert_eq!(report.checked, 1);
    assert!(report.is_clean());
}

#[tokio::test]
async fn backend_failures_map_to_statuses_and_hide_internal_detail() {
    for (failure, status) in [
        (Failure::Internal, StatusCode::INTERNAL_SERVER_ERROR),
        (Failure::StorageFull, StatusCode::INSUFFICIENT_STORAGE),
        (Failure::Unavailable, StatusCode::SERVICE_UNAVAILABLE),
    ] {
        let backend = MemBackend::new(deep_layout());
        backend.fail_with(failure);
        let r = send(app(&backend), request("POST", "/admin/v1/gc", &[AUTH])).await;
        assert_eq!(r.status, status, "{failure:?}");
        let msg = r.error();
        assert!(
            !msg.contains("/secret/path"),
            "internal detail leaked: {msg}"
        );
        assert!(!msg.is_empty());
    }
}

#[tokio::test]
async fn car_export_then_import_round_trips() {
    let source = MemBackend::new(deep_layout());
    let file = source.import(&distinct_data(300));
    let car = get(
        &source,
        &format!("/ipfs/{}?format=car&dag-scope=all&car-dups=n", file.root),
        &[],
    )
    .await;
    assert_eq!(car.status, StatusCode::OK);

    let target = MemBackend::new(deep_layout());
    let req = upload(
        "/admin/v1/car/import",
        Body::from(car.body.clone()),
        &[AUTH],
    );
    let r = send(app(&target), req).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let out: CarImportOutcome = json(&r);
    assert_eq!(out.roots.len(), 1);
    assert_eq!(out.roots[0].cid.to_string(), file.root.to_string());
    assert_eq!(out.roots[0].size, 300);
    assert_eq!(out.blocks as usize, file.leaves.len() + file.nodes.len());
    let g = get(&target, &format!("/ipfs/{}", file.root), &[]).await;
    assert_eq!(g.body.as_ref(), file.data.as_slice());
}
