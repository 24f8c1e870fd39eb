// Package vouch wraps libvouch_sdk's C ABI (sdk/include/vouch.h) the way
// go-livepeer would use it: go-livepeer emits every telemetry event through
// monitor.SendQueueEventAsync(eventType, data), and
// (*Publisher).SendQueueEventAsync takes exactly that pair, marshals data to
// JSON and hands it to the SDK, which redacts, batches, signs and publishes
// it without ever blocking the caller.
//
// The package links the static library: build it first with
// `cargo build -p vouch-sdk` (scripts/go-example.sh does everything). The
// default library directory is the workspace's target/debug; put another
// first with CGO_LDFLAGS="-L/path/to/target/release".
package vouch

/*
#cgo CFLAGS: -I${SRCDIR}/../../../sdk/include
#cgo LDFLAGS: -L${SRCDIR}/../../../target/debug -l:libvouch_sdk.a -ldl -lm -lpthread
#include <stdlib.h>
#include "vouch.h"

// Defined in Go below (//export); cgo declares its message as char *.
extern void vouchGoOnError(void *user, int32_t code, char *message);
*/
import "C"

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"runtime/cgo"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Status codes of the C ABI (VOUCH_* in vouch.h). They never change.
const (
	CodeOK           = int(C.VOUCH_OK)
	CodeNull         = int(C.VOUCH_ERR_NULL)
	CodeUTF8         = int(C.VOUCH_ERR_UTF8)
	CodeConfig       = int(C.VOUCH_ERR_CONFIG)
	CodeIdentity     = int(C.VOUCH_ERR_IDENTITY)
	CodeQueueFull    = int(C.VOUCH_ERR_QUEUE_FULL)
	CodeInvalidEvent = int(C.VOUCH_ERR_INVALID_EVENT)
	CodeTimeout      = int(C.VOUCH_ERR_TIMEOUT)
	CodeClosed       = int(C.VOUCH_ERR_CLOSED)
	CodeTransport    = int(C.VOUCH_ERR_TRANSPORT)
	CodePanic        = int(C.VOUCH_ERR_PANIC)
	CodeInternal     = int(C.VOUCH_ERR_INTERNAL)
)

// Error is a failed call into the SDK: the operation, the status code and
// the SDK's message. errors.Is(err, ErrQueueFull) and friends match on the code.
type Error struct {
	Op      string
	Code    int
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("vouch: %s: %s (code %d)", e.Op, e.Message, e.Code)
}

// Is matches sentinel errors by code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Op == "" && t.Code == e.Code
}

// Sentinels for errors.Is.
var (
	ErrQueueFull    = &Error{Code: CodeQueueFull, Message: "queue full"}
	ErrInvalidEvent = &Error{Code: CodeInvalidEvent, Message: "invalid event"}
	ErrTimeout      = &Error{Code: CodeTimeout, Message: "deadline passed"}
	ErrClosed       = &Error{Code: CodeClosed, Message: "publisher is closed"}
)

// lastError reads the SDK's thread-local message. The caller must hold the
// OS thread (runtime.LockOSThread) since the failing call.
func lastError(op string, code C.int32_t) error {
	var buf [512]C.char
	n := C.vouch_last_error(&buf[0], C.size_t(len(buf)))
	msg := C.GoString(&buf[0])
	if n == 0 {
		msg = "unknown error"
	}
	return &Error{Op: op, Code: int(code), Message: msg}
}

// call runs one C call on a locked OS thread, so that the SDK's
// thread-local error message belongs to it.
func call(op string, f func() C.int32_t) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if code := f(); code != C.VOUCH_OK {
		return lastError(op, code)
	}
	return nil
}

// maxCachedFamilies bounds the cache of C strings for event types.
const maxCachedFamilies = 256

// Publisher is one SDK publisher. All methods are safe for concurrent use;
// Close waits for calls in flight and makes later calls return ErrClosed.
type Publisher struct {
	mu       sync.RWMutex // read: any call; write: Close
	p        *C.vouch_publisher
	families sync.Map // event type -> *C.char, freed by Close
	nFamily  int32
	// MarshalErrors counts SendQueueEventAsync data that json.Marshal refused.
	marshalErrors uint64
	// publishErrors counts SendQueueEventAsync events the SDK refused (the
	// SDK's statistics say why).
	publishErrors uint64
	// onError holds, in C memory (C may keep it; Go memory it may not), the
	// cgo.Handle of every OnError function set. A replaced one may still be
	// running on the SDK's worker, so all are freed only by Close.
	onError []unsafe.Pointer
}

//export vouchGoOnError
func vouchGoOnError(user unsafe.Pointer, code C.int32_t, message *C.char) {
	f := cgo.Handle(*(*C.uintptr_t)(user)).Value().(func(int, string))
	f(int(code), C.GoString(message))
}

// OnError sets f to hear of every problem the SDK finds after Publish
// returned: events its worker could not parse or validate (CodeInvalidEvent),
// transport failures, certificate expiry. f runs on the SDK's worker thread
// and must return quickly; nil removes it.
func (pub *Publisher) OnError(f func(code int, message string)) error {
	pub.mu.Lock()
	defer pub.mu.Unlock()
	if pub.p == nil {
		return &Error{Op: "on_error", Code: CodeClosed, Message: "publisher is closed"}
	}
	var user unsafe.Pointer
	callback := C.vouch_error_callback(nil)
	if f != nil {
		user = C.malloc(C.size_t(unsafe.Sizeof(C.uintptr_t(0))))
		*(*C.uintptr_t)(user) = C.uintptr_t(cgo.NewHandle(f))
		callback = C.vouch_error_callback(C.vouchGoOnError)
	}
	err := call("on_error", func() C.int32_t { return C.vouch_set_error_callback(pub.p, callback, user) })
	if user != nil {
		pub.onError = append(pub.onError, user)
	}
	return err
}

// New creates a publisher from a TOML configuration (its text, not a path;
// relative paths in it are taken from the working directory).
func New(configTOML string) (*Publisher, error) {
	text := C.CString(configTOML)
	defer C.free(unsafe.Pointer(text))
	pub := &Publisher{}
	err := call("new", func() C.int32_t { return C.vouch_publisher_new(text, &pub.p) })
	if err != nil {
		return nil, err
	}
	return pub, nil
}

// family returns a long-lived C string for an event type, and whether the
// caller must free it (only when the cache is full).
func (pub *Publisher) family(eventType string) (*C.char, bool) {
	if c, ok := pub.families.Load(eventType); ok {
		return c.(*C.char), false
	}
	c := C.CString(eventType)
	if atomic.AddInt32(&pub.nFamily, 1) > maxCachedFamilies {
		atomic.AddInt32(&pub.nFamily, -1)
		return c, true
	}
	if prev, loaded := pub.families.LoadOrStore(eventType, c); loaded {
		C.free(unsafe.Pointer(c))
		atomic.AddInt32(&pub.nFamily, -1)
		return prev.(*C.char), false
	}
	return c, false
}

// Publish hands one event (its type and its data as JSON) to the SDK. It
// never blocks: a full queue returns ErrQueueFull (the event is dropped and
// counted), an invalid event type or data over 32 KiB ErrInvalidEvent. The
// SDK parses data on its own thread: data that is not an event is counted in
// Stats.DroppedInvalid and reported to the OnError function.
func (pub *Publisher) Publish(eventType string, data []byte) error {
	pub.mu.RLock()
	defer pub.mu.RUnlock()
	if pub.p == nil {
		return &Error{Op: "publish", Code: CodeClosed, Message: "publisher is closed"}
	}
	family, free := pub.family(eventType)
	if free {
		defer C.free(unsafe.Pointer(family))
	}
	var ptr *C.uint8_t
	if len(data) > 0 {
		// A []byte holds no Go pointers, so C may read it during the call.
		ptr = (*C.uint8_t)(unsafe.Pointer(&data[0]))
	}
	// Inlined call(): no closure on the hot path.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if code := C.vouch_publish(pub.p, family, ptr, C.size_t(len(data))); code != C.VOUCH_OK {
		return lastError("publish", code)
	}
	return nil
}

// SendQueueEventAsync has the signature of go-livepeer's
// monitor.SendQueueEventAsync: it marshals data to JSON and publishes it,
// never blocking and never failing the caller. Refused events are counted
// (see MarshalErrors, PublishErrors and the SDK's Stats).
func (pub *Publisher) SendQueueEventAsync(eventType string, data interface{}) {
	bytes, err := json.Marshal(data)
	if err != nil {
		atomic.AddUint64(&pub.marshalErrors, 1)
		return
	}
	if pub.Publish(eventType, bytes) != nil {
		atomic.AddUint64(&pub.publishErrors, 1)
	}
}

// MarshalErrors is how many SendQueueEventAsync data values json.Marshal refused.
func (pub *Publisher) MarshalErrors() uint64 { return atomic.LoadUint64(&pub.marshalErrors) }

// PublishErrors is how many SendQueueEventAsync events the SDK refused.
func (pub *Publisher) PublishErrors() uint64 { return atomic.LoadUint64(&pub.publishErrors) }

func millis(d time.Duration) C.uint32_t {
	ms := d.Milliseconds()
	if ms < 0 {
		ms = 0
	}
	if ms > int64(^uint32(0)) {
		ms = int64(^uint32(0))
	}
	return C.uint32_t(ms)
}

// Flush waits, at most timeout, until everything published so far is signed
// and handed to the transport, and the transport has flushed.
func (pub *Publisher) Flush(timeout time.Duration) error {
	pub.mu.RLock()
	defer pub.mu.RUnlock()
	if pub.p == nil {
		return &Error{Op: "flush", Code: CodeClosed, Message: "publisher is closed"}
	}
	return call("flush", func() C.int32_t { return C.vouch_flush(pub.p, millis(timeout)) })
}

// Stats are the SDK's counters (see the Rust `Stats`).
type Stats struct {
	Queued           uint64  `json:"queued"`
	PublishedEvents  uint64  `json:"published_events"`
	SentEnvelopes    uint64  `json:"sent_envelopes"`
	SentEvents       uint64  `json:"sent_events"`
	DroppedQueueFull uint64  `json:"dropped_queue_full"`
	DroppedTransport uint64  `json:"dropped_transport"`
	DroppedInvalid   uint64  `json:"dropped_invalid"`
	LastError        *string `json:"last_error"`
}

// StatsJSON returns the SDK's counters as its JSON object.
func (pub *Publisher) StatsJSON() (string, error) {
	pub.mu.RLock()
	defer pub.mu.RUnlock()
	if pub.p == nil {
		return "", &Error{Op: "stats", Code: CodeClosed, Message: "publisher is closed"}
	}
	var out *C.char
	if err := call("stats", func() C.int32_t { return C.vouch_stats_json(pub.p, &out) }); err != nil {
		return "", err
	}
	defer C.vouch_string_free(out)
	return C.GoString(out), nil
}

// Stats returns the SDK's counters.
func (pub *Publisher) Stats() (Stats, error) {
	var s Stats
	text, err := pub.StatsJSON()
	if err != nil {
		return s, err
	}
	err = json.Unmarshal([]byte(text), &s)
	return s, err
}

// Close stops taking events, sends what is queued (waiting at most timeout)
// and frees the publisher. Later calls return ErrClosed.
func (pub *Publisher) Close(timeout time.Duration) error {
	pub.mu.Lock()
	defer pub.mu.Unlock()
	if pub.p == nil {
		return nil
	}
	p := pub.p
	pub.p = nil
	err := call("close", func() C.int32_t { return C.vouch_publisher_close(p, millis(timeout)) })
	pub.families.Range(func(k, v interface{}) bool {
		C.free(unsafe.Pointer(v.(*C.char)))
		pub.families.Delete(k)
		return true
	})
	// The worker has stopped: nothing calls the functions any more.
	for _, user := range pub.onError {
		cgo.Handle(*(*C.uintptr_t)(user)).Delete()
		C.free(user)
	}
	pub.onError = nil
	return err
}

// IsQueueFull reports whether err is the SDK's queue-full refusal.
func IsQueueFull(err error) bool { return errors.Is(err, ErrQueueFull) }
