//! Peers that speak nothing but `/vouch/1/sync`: no gossipsub, no
//! identify, so a node never counts one as a sync peer of its own, only
//! answers (or refuses) what it asks. What a flooder looks like to a node.
//!
//! [`raw_client`] sends well-formed requests (any size the protocol's
//! bounds let through, or over them in content); [`byte_client`] sends any
//! bytes at all as a request, to show what a node does with a message that
//! is not one (too long, not CBOR, the wrong shape).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{StreamProtocol, Swarm, noise, tcp, yamux};
use vouch_net::SyncStats;
use vouch_net::sync::{
    MAX_RESPONSE_BYTES, PROTOCOL, SyncCodec, SyncResponse, codec, protocol_behaviour,
};

/// How long a client's request waits for its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Streams a client opens at once on a connection (a node's default).
const STREAMS: usize = 8;

/// A swarm with a fresh identity, TCP with noise and yamux, and `behaviour`
/// alone. It must run inside a tokio runtime.
fn client_with<B: NetworkBehaviour>(behaviour: B) -> Swarm<B> {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
        .expect("TCP with noise and yamux builds")
        .with_behaviour(|_| behaviour)
        .expect("a behaviour given ready-made builds")
        .build()
}

/// A swarm that sends (and would answer) well-formed sync messages, with
/// the sync protocol alone (requests time out after 30 s, 8 streams a
/// connection). It must run inside a tokio runtime.
pub fn raw_client() -> Swarm<request_response::Behaviour<SyncCodec>> {
    let stats = Arc::new(SyncStats::default());
    client_with(protocol_behaviour(stats, REQUEST_TIMEOUT, STREAMS))
}

/// A swarm that sends any bytes as a `/vouch/1/sync` request and reads the
/// answer as a sync response; it answers nothing itself. It must run
/// inside a tokio runtime.
pub fn byte_client() -> Swarm<request_response::Behaviour<ByteCodec>> {
    client_with(request_response::Behaviour::with_codec(
        ByteCodec,
        [(PROTOCOL, ProtocolSupport::Outbound)],
        request_response::Config::default()
            .with_request_timeout(REQUEST_TIMEOUT)
            .with_max_concurrent_streams(STREAMS),
    ))
}

/// The codec of [`byte_client`]: a request is written as the bytes given,
/// unchecked; a response is read like the node's codec reads one (bounded,
/// strict CBOR).
#[derive(Debug, Clone, Copy, Default)]
pub struct ByteCodec;

impl request_response::Codec for ByteCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = SyncResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, _: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        // Outbound only: libp2p never offers this codec a request to read.
        Err(io::Error::new(io::ErrorKind::Unsupported, "a byte client answers nothing"))
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut bytes = Vec::new();
        io.take(MAX_RESPONSE_BYTES as u64 + 1).read_to_end(&mut bytes).await?;
        Ok(codec::decode(&bytes, MAX_RESPONSE_BYTES)?)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        // libp2p closes the stream after it: the node reads to its end.
        io.write_all(&request).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
        _: SyncResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        Err(io::Error::new(io::ErrorKind::Unsupported, "a byte client answers nothing"))
    }
}
