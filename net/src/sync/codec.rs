//! `/vouch/1/sync` on a stream: one CBOR message each way, the request
//! closed by the requester's end of stream and the response by the
//! server's, each bounded ([`MAX_REQUEST_BYTES`], [`MAX_RESPONSE_BYTES`]).
//! A reader takes at most one byte past the bound, so an endless or
//! oversized message costs the bound and no more; a writer refuses to send a
//! message over it. Both count the bytes they move in [`SyncStats`].
//!
//! A request that fails to read is handed up as [`RequestFrame::Malformed`]
//! rather than as an error: libp2p's request-response behaviour reports an
//! inbound stream whose request it could not read to nobody (it only logs
//! it), so an error here would leave the peer that sent it uncounted and
//! unpenalized.

use std::io;
use std::sync::Arc;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::stats::SyncStats;
use super::wire::{MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, SyncRequest, SyncResponse};

/// Why bytes are not a sync message, or a message cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The message is over its bound.
    #[error("message over the {max}-byte bound")]
    TooLarge {
        /// The bound.
        max: usize,
    },
    /// The bytes do not decode as the message expected.
    #[error("not a sync message: {0}")]
    Malformed(String),
    /// The message could not be encoded (a bug, not the peer's doing).
    #[error("encoding a sync message: {0}")]
    Encode(String),
}

impl CodecError {
    /// The codec's error inside an I/O error the stream reported, if it is
    /// one: a peer that sent it broke the protocol, while any other I/O
    /// error is the connection's.
    pub fn from_io(e: &io::Error) -> Option<&CodecError> {
        e.get_ref().and_then(|inner| inner.downcast_ref::<CodecError>())
    }
}

impl From<CodecError> for io::Error {
    fn from(e: CodecError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// A `/vouch/1/sync` request as [`SyncCodec`] carries it: a request, or, on
/// the serving side, bytes that were not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestFrame {
    /// A well-formed request (the only kind a node sends).
    Request(SyncRequest),
    /// What the peer sent was not a request (over [`MAX_REQUEST_BYTES`], not
    /// CBOR, the wrong shape): the node counts it, penalizes the peer and
    /// answers nothing. Never written: sending one is an error.
    Malformed(CodecError),
}

impl From<SyncRequest> for RequestFrame {
    fn from(request: SyncRequest) -> RequestFrame {
        RequestFrame::Request(request)
    }
}

/// Encodes `message`, refusing one over `max` bytes.
pub fn encode<T: Serialize>(message: &T, max: usize) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    ciborium::into_writer(message, &mut out).map_err(|e| CodecError::Encode(e.to_string()))?;
    if out.len() > max {
        return Err(CodecError::TooLarge { max });
    }
    Ok(out)
}

/// Decodes one message that must fill `bytes` exactly (at most `max`).
pub fn decode<T: DeserializeOwned>(bytes: &[u8], max: usize) -> Result<T, CodecError> {
    if bytes.len() > max {
        return Err(CodecError::TooLarge { max });
    }
    let mut rest = bytes;
    let message =
        ciborium::from_reader(&mut rest).map_err(|e| CodecError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CodecError::Malformed(format!("{} bytes after the message", rest.len())));
    }
    Ok(message)
}

/// The request-response codec of `/vouch/1/sync`.
#[derive(Debug, Clone)]
pub struct SyncCodec {
    stats: Arc<SyncStats>,
}

impl SyncCodec {
    /// A codec that counts the bytes it moves in `stats`.
    pub fn new(stats: Arc<SyncStats>) -> SyncCodec {
        SyncCodec { stats }
    }

    async fn read<T, R>(&self, io: &mut R, max: usize) -> io::Result<T>
    where
        T: DeserializeOwned,
        R: AsyncRead + Unpin + Send,
    {
        let mut bytes = Vec::new();
        // One byte past the bound tells an oversized message from one that fits.
        io.take(max as u64 + 1).read_to_end(&mut bytes).await?;
        self.stats.received_bytes(bytes.len());
        Ok(decode(&bytes, max)?)
    }

    async fn write<T, W>(&self, io: &mut W, message: &T, max: usize) -> io::Result<()>
    where
        T: Serialize,
        W: AsyncWrite + Unpin + Send,
    {
        let bytes = encode(message, max)?;
        io.write_all(&bytes).await?;
        self.stats.sent_bytes(bytes.len());
        Ok(())
    }
}

impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = RequestFrame;
    type Response = SyncResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<RequestFrame>
    where
        T: AsyncRead + Unpin + Send,
    {
        match self.read(io, MAX_REQUEST_BYTES).await {
            Ok(request) => Ok(RequestFrame::Request(request)),
            Err(e) => match CodecError::from_io(&e) {
                Some(malformed) => Ok(RequestFrame::Malformed(malformed.clone())),
                None => Err(e),
            },
        }
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read(io, MAX_RESPONSE_BYTES).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: RequestFrame,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match request {
            RequestFrame::Request(request) => self.write(io, &request, MAX_REQUEST_BYTES).await,
            RequestFrame::Malformed(_) => {
                Err(CodecError::Encode("a malformed request is read, never sent".into()).into())
            }
        }
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: SyncResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.write(io, &response, MAX_RESPONSE_BYTES).await?;
        io.flush().await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use futures::executor::block_on;
    use request_response::Codec as _;

    use super::*;
    use crate::sync::wire::{
        Digest, MAX_FETCH_IDS, MAX_IDS_PER_RESPONSE, MAX_SPAN_MINUTES, PartitionSet,
        RESPONSE_OVERHEAD_BYTES, RefusedReason,
    };

    fn round_trip_request(r: &SyncRequest) -> SyncRequest {
        decode(&encode(r, MAX_REQUEST_BYTES).unwrap(), MAX_REQUEST_BYTES).unwrap()
    }

    fn round_trip_response(r: &SyncResponse) -> SyncResponse {
        decode(&encode(r, MAX_RESPONSE_BYTES).unwrap(), MAX_RESPONSE_BYTES).unwrap()
    }

    #[test]
    fn every_message_round_trips() {
        let p: PartitionSet = [1, 50, 99].into_iter().collect();
        let requests = [
            SyncRequest::Minutes { from: 28_000_000, to: 28_000_006, partitions: p },
            SyncRequest::Partitions { minute: 28_000_000, partitions: p },
            SyncRequest::Ids { minute: 5, partition: 99, after: None },
            SyncRequest::Ids { minute: 5, partition: 0, after: Some([7; 32]) },
            SyncRequest::Fetch { ids: vec![[1; 32], [2; 32]] },
        ];
        for r in &requests {
            assert_eq!(&round_trip_request(r), r);
        }
        let d = Digest { count: 1200, hash: [9; 32] };
        let responses = [
            SyncResponse::Minutes { partitions: p, digests: vec![(1, d), (2, d)] },
            SyncResponse::Partitions { minute: 1, digests: vec![(50, d)] },
            SyncResponse::Ids { ids: vec![[3; 32]; 3], truncated: true },
            SyncResponse::Envelopes { envelopes: vec![b"one".to_vec(), Vec::new()] },
            SyncResponse::Refused { reason: RefusedReason::RateLimited },
        ];
        for r in &responses {
            assert_eq!(&round_trip_response(r), r);
        }
    }

    #[test]
    fn ids_and_envelopes_travel_as_byte_strings() {
        // 1,200 ids: one 3-byte head and 32 bytes each, not an array of integers.
        let ids = SyncResponse::Ids { ids: vec![[0xab; 32]; 1200], truncated: false };
        let len = encode(&ids, MAX_RESPONSE_BYTES).unwrap().len();
        assert!((1200 * 32..1200 * 32 + 64).contains(&len), "{len}");
        let envelope = vec![0xff; 2000];
        let fetched = SyncResponse::Envelopes { envelopes: vec![envelope; 10] };
        let len = encode(&fetched, MAX_RESPONSE_BYTES).unwrap().len();
        assert!((20_000..20_000 + 64).contains(&len), "{len}");
    }

    #[test]
    fn the_largest_legal_messages_fit_their_bounds() {
        let fetch = SyncRequest::Fetch { ids: vec![[0xff; 32]; MAX_FETCH_IDS] };
        assert!(encode(&fetch, MAX_REQUEST_BYTES).is_ok());
        let ids =
            SyncResponse::Ids { ids: vec![[0xff; 32]; MAX_IDS_PER_RESPONSE], truncated: true };
        assert!(encode(&ids, MAX_RESPONSE_BYTES).is_ok());
        let d = Digest { count: u64::MAX, hash: [0xff; 32] };
        let minutes = SyncResponse::Minutes {
            partitions: PartitionSet::all(),
            digests: (0..MAX_SPAN_MINUTES).map(|m| (u64::MAX - m, d)).collect(),
        };
        assert!(encode(&minutes, MAX_REQUEST_BYTES).is_ok(), "a span's digests are small");
        // A fetch answer filled to the envelope budget, in 64 KiB envelopes
        // and in 256 tiny ones.
        let budget = MAX_RESPONSE_BYTES - RESPONSE_OVERHEAD_BYTES;
        let big = vec![vec![0xff; 64 * 1024]; budget / (64 * 1024)];
        let each = budget / MAX_FETCH_IDS;
        let mut small = vec![vec![0xff; each]; MAX_FETCH_IDS];
        small[0].resize(budget - (MAX_FETCH_IDS - 1) * each, 0xff);
        for envelopes in [big, small] {
            let r = SyncResponse::Envelopes { envelopes };
            assert!(encode(&r, MAX_RESPONSE_BYTES).is_ok());
        }
    }

    #[test]
    fn oversized_and_malformed_messages_are_refused() {
        let fetch = SyncRequest::Fetch { ids: vec![[0; 32]; 4 * 1024] };
        assert_eq!(
            encode(&fetch, MAX_REQUEST_BYTES),
            Err(CodecError::TooLarge { max: MAX_REQUEST_BYTES })
        );
        let bytes = encode(&fetch, usize::MAX).unwrap();
        assert_eq!(
            decode::<SyncRequest>(&bytes, MAX_REQUEST_BYTES),
            Err(CodecError::TooLarge { max: MAX_REQUEST_BYTES })
        );
        let ok = encode(&SyncRequest::Fetch { ids: vec![] }, MAX_REQUEST_BYTES).unwrap();
        let mut trailing = ok.clone();
        trailing.push(0);
        for bad in [&b""[..], b"\xff\x00", &ok[..ok.len() - 1], &trailing] {
            let e = decode::<SyncRequest>(bad, MAX_REQUEST_BYTES).unwrap_err();
            assert!(matches!(e, CodecError::Malformed(_)), "{bad:?}: {e}");
        }
        // Ids whose bytes are not a multiple of 32.
        let mut odd = encode(&SyncRequest::Fetch { ids: vec![[1; 32]] }, 1 << 20).unwrap();
        let at = odd.iter().position(|&b| b == 0x58).unwrap(); // bytes(1-byte length)
        odd[at + 1] = 31;
        odd.pop();
        assert!(matches!(decode::<SyncRequest>(&odd, 1 << 20), Err(CodecError::Malformed(_))));
    }

    #[test]
    fn a_stream_is_read_up_to_its_bound_and_counted() {
        let stats = Arc::new(SyncStats::default());
        let mut codec = SyncCodec::new(Arc::clone(&stats));
        let protocol = crate::sync::PROTOCOL;
        let request = SyncRequest::Ids { minute: 1, partition: 2, after: None };
        let mut wire = Vec::new();
        block_on(codec.write_request(&protocol, &mut wire, request.clone().into())).unwrap();
        let got = block_on(codec.read_request(&protocol, &mut wire.as_slice())).unwrap();
        assert_eq!(got, RequestFrame::Request(request));
        assert_eq!((stats.bytes_sent(), stats.bytes_received()), (wire.len(), wire.len()));

        // An endless stream of zeros is cut one byte past the bound, and
        // handed up as malformed (for the node to penalize), not as an error.
        let mut endless = futures::io::repeat(0).take(u64::MAX);
        let got = block_on(codec.read_request(&protocol, &mut endless)).unwrap();
        let too_large = CodecError::TooLarge { max: MAX_REQUEST_BYTES };
        assert_eq!(got, RequestFrame::Malformed(too_large.clone()));
        assert_eq!(stats.bytes_received(), wire.len() + MAX_REQUEST_BYTES + 1);
        let got = block_on(codec.read_request(&protocol, &mut &b"\xff\x00"[..])).unwrap();
        assert!(matches!(got, RequestFrame::Malformed(CodecError::Malformed(_))), "{got:?}");
        // Such a frame is never sent.
        let e = block_on(codec.write_request(&protocol, &mut Vec::new(), got)).unwrap_err();
        assert!(matches!(CodecError::from_io(&e), Some(CodecError::Encode(_))), "{e}");
        let closed = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert_eq!(CodecError::from_io(&closed), None, "a transport error is not the peer's");
    }
}
