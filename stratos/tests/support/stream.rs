//! A `subscribeRecords` client for the system tests.

use futures::StreamExt;
use std::time::Duration;
use stratos_query::subscribe::decode_frame;
use stratos_schema::Ipld;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// An open subscription.
pub type Subscriber = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Subscribes to `actor`'s stream on the query service at `base` (`http://…`), as the actor
/// itself with development authentication, after `cursor` when given.
pub async fn subscribe(base: &str, actor: &str, cursor: Option<u64>) -> Subscriber {
    let mut url = format!(
        "{}/xrpc/zone.stratos.sync.subscribeRecords?did={actor}",
        base.replacen("http", "ws", 1)
    );
    if let Some(cursor) = cursor {
        url.push_str(&format!("&cursor={cursor}"));
    }
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {actor}").parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// Reads `count` `#commit` frames and returns their `seq`s, failing if the stream stalls.
pub async fn next_seqs(subscriber: &mut Subscriber, count: usize) -> Vec<u64> {
    let mut seen = Vec::new();
    while seen.len() < count {
        let message = tokio::time::timeout(Duration::from_secs(30), subscriber.next())
            .await
            .expect("the stream stalled")
            .unwrap()
            .unwrap();
        if let Message::Binary(bytes) = message {
            let (header, body) = decode_frame(&bytes).unwrap();
            let Ipld::Map(header) = header else {
                panic!("a header that is not a map")
            };
            assert_eq!(header.get("t"), Some(&Ipld::String("#commit".into())));
            let Ipld::Map(body) = body else {
                panic!("a body that is not a map")
            };
            let Some(Ipld::Integer(seq)) = body.get("seq") else {
                panic!("no seq")
            };
            seen.push(*seq as u64);
        }
    }
    seen
}
