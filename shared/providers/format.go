package providers

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"

	"tollgate.dev/tollgate/internal/jsonscan"
	"tollgate.dev/tollgate/shared/models"
	"tollgate.dev/tollgate/shared/users"
)

// Format is one API shape: where a request names its output limit, how
// its answers report usage (whole and streamed), and how to fake an answer
// carrying an error. Providers share formats (Mistral speaks OpenAI chat).
type Format struct {
	Name string
	// Body: the route takes a JSON body (POST).
	Body bool
	// Admitted: the request passes the quota, rate and concurrency limits.
	Admitted bool
	// Charged: a 2xx answer is charged.
	Charged bool
	// Kind is what the route makes: its families and rate limit.
	Kind models.Kind
	// MaxTokens are the paths of the requested output limit.
	MaxTokens [][]string
	// AskUsage edits a streamed request so that the stream reports usage
	// (OpenAI's stream_options.include_usage); hide is true when the
	// client had not asked for it, so the usage chunk is not relayed.
	AskUsage func(body []byte, obj *jsonscan.Object) (edits []jsonscan.Edit, hide bool, err error)
	// Thinking paths: a member at any of them, not null, false or 0,
	// asks for hidden reasoning.
	Thinking [][]string
	// Usage reads a whole answer's usage.
	Usage func(body []byte) (Usage, bool)
	// Event reads one stream event (its end included); it reports whether
	// to relay it.
	Event func(st *StreamState, name, data []byte) bool
	// Clean edits a relayed event's bytes (nil: relayed verbatim).
	Clean func(st *StreamState, raw []byte) []byte
	// StreamError renders an error event for a stream the upstream broke.
	StreamError func(msg string) []byte
	// Fake renders an error as a 200 answer (ERROR_FORMAT=completion);
	// nil where no such answer makes sense (lists, embeddings).
	Fake func(f FakeAnswer) (contentType string, body []byte)
	// DefaultModel is assumed when the body names none.
	DefaultModel string
}

// List is the format of model lists and other bodiless GETs.
var List = &Format{Name: "list"}

// MaxOutputLimit bounds a requested output limit: far above any model's,
// far below what would wrap an int32 in an upstream's parser.
const MaxOutputLimit = 1 << 30

// Request is what the proxy learnt from (and changed in) a request body.
type Request struct {
	Body   []byte // as forwarded
	Model  string
	Stream bool
	// MaxOut is the output limit as forwarded (clamped); HasMaxOut is false
	// when the request names none.
	MaxOut    int64
	HasMaxOut bool
	// PromptTokens estimates the prompt: a quarter of its text bytes.
	PromptTokens int64
	// HideUsage: the proxy asked for streamed usage the client did not ask
	// for, so the usage-only chunk is not relayed.
	HideUsage bool
	// Thinking: the request asks for reasoning the answer may not show.
	Thinking bool
}

// Parse reads a request body once: model, stream, output limit. A body that
// is not a JSON object fails with jsonscan.ErrSyntax; an output limit that
// is not a whole number in range, with a *users.Error to show. It clamps
// the output limit to limit (when clamp and limit > 0) and asks streams
// for usage where the format must, editing only those bytes. With inPlace
// the edits may be made in body itself (the caller's own copy); otherwise
// body is left unchanged.
func (f *Format) Parse(body []byte, limit int64, clamp, inPlace bool) (*Request, error) {
	obj, text, err := jsonscan.ScanObject(body, 0, true)
	if err != nil {
		return nil, err
	}
	rq := &Request{Body: body, PromptTokens: (text + 3) / 4, Model: f.DefaultModel}
	if m, ok := obj.Get("model"); ok {
		if s, err := jsonscan.Unquote(body[m.Start:m.End]); err == nil && s != "" {
			rq.Model = s
		}
	}
	if m, ok := obj.Get("stream"); ok {
		rq.Stream = string(body[m.Start:m.End]) == "true"
	}
	var edits []jsonscan.Edit
	for _, path := range f.MaxTokens {
		for _, m := range jsonscan.FindPath(body, obj, path) {
			v := body[m.Start:m.End]
			if jsonscan.IsNull(v) {
				continue
			}
			// Only a whole number in range may reach the upstream: a
			// string, fraction or huge value would pass the clamp and the
			// quota's count unread, and some upstreams take it all the same.
			// A whole number written otherwise (1e5) is taken as it is.
			n, ok := jsonscan.ParseInt(v)
			if !ok {
				f, err := strconv.ParseFloat(string(v), 64)
				if err != nil || f != math.Trunc(f) || f < 0 || f > MaxOutputLimit {
					return nil, limitError(path)
				}
				n = int64(f)
			}
			if n < 0 || n > MaxOutputLimit {
				return nil, limitError(path)
			}
			if clamp && limit > 0 && n > limit {
				n = limit
				edits = append(edits, jsonscan.Edit{Start: m.Start, End: m.End, Repl: []byte(strconv.FormatInt(limit, 10))})
			}
			// The last occurrence wins, as in the upstream's parser.
			rq.MaxOut, rq.HasMaxOut = n, true
		}
	}
	for _, path := range f.Thinking {
		for _, m := range jsonscan.FindPath(body, obj, path) {
			switch v := string(body[m.Start:m.End]); v {
			case "null", "false", "0", `{"type":"disabled"}`, `{"thinkingBudget":0}`:
			default:
				rq.Thinking = true
			}
		}
	}
	if f.AskUsage != nil && rq.Stream {
		e, hide, err := f.AskUsage(body, obj)
		if err != nil {
			return nil, err
		}
		edits = append(edits, e...)
		rq.HideUsage = hide
	}
	rq.Body = jsonscan.ApplyEdits(body, edits, inPlace)
	return rq, nil
}

func limitError(path []string) error {
	return users.Errorf(users.CodeInvalid, "%s must be a whole number from 0 to %d.", strings.Join(path, "."), MaxOutputLimit)
}

// Usage is what an upstream reported: input (prompt) and output
// (completion, reasoning included) tokens.
type Usage struct {
	Input, Output int64
}

// Total is the charge of a reported usage.
func (u Usage) Total() int64 { return u.Input + u.Output }

// maxReported bounds one reported count (2^40: more than any context
// window, far from int64's end). What an upstream reports is clamped to
// [0, maxReported] as it is read, so that a negative or absurd number can
// neither refund a user's quota nor wrap a sum round to a negative charge.
const maxReported = 1 << 40

func reported(n int64) int64 { return min(max(n, 0), maxReported) }

// StreamState follows a stream as it is relayed.
type StreamState struct {
	HideUsage bool
	U         Usage
	HaveIn    bool // the input count was reported
	HaveOut   bool // the final output count was reported
	Text      int64
	Done      bool // the stream's own end passed
	// Final: the answer's last text has passed; only the usage and the
	// end may follow, so a client leaving now does not cancel the upstream.
	Final bool
	// Hidden is output the upstream may bill without it being relayed
	// (a reasoning model's thinking): an answer cut short is charged at
	// least this much output.
	Hidden int64
}

// Tokens is the charge: the reported usage for a finished stream, else an
// estimate of what was relayed (reported counts where known, the prompt
// estimate and a quarter of the relayed text bytes otherwise).
func (st *StreamState) Tokens(promptEstimate int64) int64 {
	if st.Done && st.HaveIn && st.HaveOut {
		return st.U.Total()
	}
	in := promptEstimate
	if st.HaveIn {
		in = st.U.Input
	}
	out := max((st.Text+3)/4, st.U.Output, st.Hidden)
	return in + out
}

// EstimateAnswer estimates the usage of a whole answer that reported
// none (some gateways, DALL-E): a quarter of its text bytes.
func EstimateAnswer(body []byte) int64 {
	_, text, _ := jsonscan.ScanObject(body, 0, true)
	return (text + 3) / 4
}

// FakeAnswer is an error shown as an answer of the request's own format
// (ERROR_FORMAT=completion), for clients that show nothing on errors.
type FakeAnswer struct {
	Text    string
	Model   string
	Stream  bool
	SSE     bool // a stream framed as SSE (not a JSON array)
	Created int64
}

// Content types of answers.
const (
	ContentJSON = "application/json"
	ContentSSE  = "text/event-stream"
)

// sse renders events: pairs of name (may be empty) and data.
func sse(crlf bool, events ...any) []byte {
	nl := "\n"
	if crlf {
		nl = "\r\n"
	}
	var b bytes.Buffer
	for i := 0; i+1 < len(events); i += 2 {
		if name, _ := events[i].(string); name != "" {
			b.WriteString("event: " + name + nl)
		}
		b.WriteString("data: ")
		if s, ok := events[i+1].(string); ok {
			b.WriteString(s)
		} else {
			b.Write(MustJSON(events[i+1]))
		}
		b.WriteString(nl + nl)
	}
	return b.Bytes()
}

// MustJSON encodes maps of plain values.
func MustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps of plain values are encoded
	}
	return b
}

// eventName is a stream event's name, from its event: line or, for
// streams relayed without them (some gateways drop them), its data's type.
func eventName(name, data []byte) string {
	if len(name) > 0 {
		return string(name)
	}
	return jsonscan.EventType(data)
}

var doneData = []byte("[DONE]")
