package providers

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/tidwall/gjson"

	"tollgate.dev/tollgate/internal/jsonscan"
	"tollgate.dev/tollgate/shared/users"
)

// ContentEventStream is the type of Bedrock's binary streams.
const ContentEventStream = "application/vnd.amazon.eventstream"

// inbound adapts Bedrock's answers to the mount's API: errors in its
// shape, event streams as its SSE, whole answers as its clients read them.
func (m *bedrockModel) inbound(resp *http.Response, c *Call) error {
	ct := resp.Header.Get("Content-Type")
	switch {
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return err
		}
		out := m.errorBody(resp.StatusCode, &users.Error{Message: bedrockErrorMessage(resp.Header, body)})
		setJSONBody(resp, out)
	case c.Path == cloudModelsPath:
		// The model list is translated by its route.
	case m.count != "" && c.Path == m.count:
		// CountTokens answers {"inputTokens": n}; Anthropic's clients
		// read {"input_tokens": n}.
		body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if err != nil {
			return err
		}
		setJSONBody(resp, MustJSON(map[string]any{"input_tokens": reported(gjson.GetBytes(body, "inputTokens").Int())}))
	case strings.HasPrefix(ct, ContentEventStream):
		resp.Body = &eventStreamReader{src: resp.Body, m: m, c: c, dec: eventstream.NewDecoder()}
		resp.Header.Set("Content-Type", ContentSSE)
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
	case m.whole != nil:
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxWhole+1))
		resp.Body.Close()
		if err != nil {
			return err
		}
		if len(body) > maxWhole {
			return errors.New("the Bedrock answer is too large")
		}
		setJSONBody(resp, m.whole(body, resp.Header, c))
	}
	return nil
}

// maxWhole bounds a whole answer adapted in memory.
const maxWhole = 32 << 20

func setJSONBody(resp *http.Response, body []byte) {
	resp.Header.Set("Content-Type", ContentJSON)
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.ContentLength = int64(len(body))
	resp.Body = io.NopCloser(bytes.NewReader(body))
}

// eventStreamReader turns Bedrock's binary event stream into SSE as it
// is read: one frame decoded and rendered at a time, nothing kept after.
type eventStreamReader struct {
	src   io.ReadCloser
	m     *bedrockModel
	c     *Call
	dec   *eventstream.Decoder
	buf   []byte // payload buffer, reused
	plain []byte // a chunk's decoded bytes, reused
	out   []byte
	pos   int
	done  bool
	err   error
}

func (r *eventStreamReader) Read(p []byte) (int, error) {
	for r.pos == len(r.out) {
		if r.done {
			return 0, r.err
		}
		r.out, r.pos = r.out[:0], 0
		r.next()
	}
	n := copy(p, r.out[r.pos:])
	r.pos += n
	return n, nil
}

func (r *eventStreamReader) Close() error { return r.src.Close() }

// next decodes one frame into r.out, or ends the stream.
func (r *eventStreamReader) next() {
	msg, err := r.dec.Decode(r.src, r.buf[:0])
	if err != nil {
		r.done = true
		if errors.Is(err, io.EOF) {
			r.out, r.err = append(r.out, r.m.end...), io.EOF
		} else {
			// A broken frame is a broken stream: the proxy ends it with
			// the format's error event.
			r.err = fmt.Errorf("decoding the Bedrock event stream: %w", err)
		}
		return
	}
	if cap(msg.Payload) > cap(r.buf) {
		r.buf = msg.Payload[:0]
	}
	header := func(name string) string {
		if v := msg.Headers.Get(name); v != nil {
			return v.String()
		}
		return ""
	}
	switch header(":message-type") {
	case "event":
		if header(":event-type") != "chunk" {
			return // initial-response and the like carry nothing to relay
		}
		data, ok := r.decodeBytes(msg.Payload)
		if !ok {
			r.done, r.err = true, errors.New("a Bedrock stream chunk has no base64 bytes")
			return
		}
		r.out = r.m.event(r.out, data, r.c)
	case "exception":
		r.exception(header(":exception-type"), bedrockErrorMessage(http.Header{}, msg.Payload))
	case "error":
		r.exception(header(":error-code"), header(":error-message"))
	default:
		r.done, r.err = true, fmt.Errorf("a Bedrock stream frame has message type %q", header(":message-type"))
	}
}

// decodeBytes decodes a chunk's {"bytes":"<base64>"} into a buffer of
// the reader's own, reused from chunk to chunk.
func (r *eventStreamReader) decodeBytes(payload []byte) ([]byte, bool) {
	raw := stringMember(payload, "bytes")
	if raw == nil {
		return nil, false
	}
	r.plain = slices.Grow(r.plain[:0], base64.StdEncoding.DecodedLen(len(raw)))
	n, err := base64.StdEncoding.Decode(r.plain[:cap(r.plain)], raw)
	if err != nil {
		return nil, false
	}
	return r.plain[:n], true
}

// stringMember is the text of the top-level string member key of a JSON
// object (nil: none, or not a string), unescaped only when it must be.
func stringMember(obj []byte, key string) []byte {
	var v []byte
	if !jsonscan.EachMember(obj, func(k, val []byte) bool {
		if string(k) == key {
			v = val
		}
		return true
	}) || len(v) < 2 || v[0] != '"' {
		return nil
	}
	if !bytes.ContainsRune(v, '\\') {
		return v[1 : len(v)-1]
	}
	s, err := jsonscan.Unquote(v)
	if err != nil {
		return nil
	}
	return []byte(s)
}

// exception relays a stream's exception as the mount's error event; the
// stream ends there, as Bedrock's does.
func (r *eventStreamReader) exception(typ, msg string) {
	msg = redactAccount(msg)
	if typ != "" && !strings.HasPrefix(msg, typ) {
		msg = typ + ": " + msg
	}
	r.out = append(r.out, r.m.exception(typ, msg)...)
	r.done, r.err = true, io.EOF
}

// bedrockExceptionTypes are Anthropic's error types for Bedrock's stream
// exceptions.
var bedrockExceptionTypes = map[string]string{
	"throttlingException":           "rate_limit_error",
	"serviceUnavailableException":   "overloaded_error",
	"modelStreamErrorException":     "api_error",
	"internalServerException":       "api_error",
	"modelTimeoutException":         "api_error",
	"validationException":           "invalid_request_error",
	"accessDeniedException":         "permission_error",
	"resourceNotFoundException":     "not_found_error",
	"serviceQuotaExceededException": "rate_limit_error",
}
