package providers

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

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
	// AddMaxTokens is where the clamp is written when the request names
	// no output limit (one or two levels: the parent object is the one
	// of MaxTokens the body has, else created). Nil: none is added (the
	// API requires a limit, or the format has none).
	AddMaxTokens []string
	// Single paths: a member at any of them must be absent, null or 1,
	// else the request is refused (n, best_of, candidateCount: each
	// multiplies the output past the clamp).
	Single [][]string
	// Unserved paths: a member at any of them must be absent, null or
	// false, else the request is refused (Responses' background: answered
	// at once without usage, while the upstream goes on generating).
	Unserved [][]string
	// TokenIDs paths: a member at any of them may give the prompt as token
	// ids (an array of integers, or of arrays of them), each one token of
	// the prompt estimate.
	TokenIDs [][]string
	// Stored paths: a member at any of them (not null) names context the
	// upstream holds (a stored response or conversation), which the
	// prompt estimate does not see (Request.Stored).
	Stored [][]string
	// OperatorRefs paths: a member at any of them (not null) names an
	// object stored on the operator's account (Responses' stored prompt,
	// whose content and model are the operator's; Gemini's context
	// cache), and the request is refused: no route here stores one for a
	// token holder, and its content is neither the user's nor counted.
	OperatorRefs [][]string
	// StoredItems paths: an array at any of them may hold references to
	// items the upstream holds ({"type":"item_reference"}): Request.Stored.
	StoredItems [][]string
	// ImageTools paths: a list of tools at any of them may hold an image
	// generation tool ({"type":"image_generation"}), which makes images
	// with ImageToolModel from a text route: Request.MakesImages.
	ImageTools     [][]string
	ImageToolModel string
	// ImagePrice, for a request that MakesImages, is the output tokens
	// one image of its image tool is reserved and, when the answer does
	// not report the tool's usage, charged, and how many images the
	// quota reserves (Request.ImagePrice, ImagesReserved).
	ImagePrice func(body []byte) (perImage, images int64)
	// ImageUsage reads what a whole answer's image tool made: the tokens
	// it reports (reported false: none), and the images in the answer.
	ImageUsage func(body []byte) (tokens int64, reported bool, images int64)
	// AskUsage edits a streamed request so that the stream reports usage
	// (OpenAI's stream_options.include_usage); hide is true when the
	// client had not asked for it, so the usage chunk is not relayed.
	// It is given the offset of the body's closing brace and the
	// stream_options member (nil when absent).
	AskUsage func(body []byte, close int, so *jsonscan.Member) (edits []jsonscan.Edit, hide bool, err error)
	// Thinking paths: a member at any of them asks for hidden reasoning
	// unless it turns reasoning off (thinkingOn).
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
	// SendModel: an assumed DefaultModel is written into the forwarded
	// body, so that the model counted is the model served (OpenAI's image
	// API picks gpt-image-1 itself when a gpt-image parameter is used).
	SendModel bool
	// Price, when set, is the output a request is reserved and charged at
	// when its answer reports no usage (DALL-E's images, priced per
	// image): given the body as forwarded (a translation's native one)
	// and its model; 0 leaves the answer's estimate (Request.Priced).
	Price func(body []byte, model string) int64
}

// variant is a copy of f changed by edit: an API that speaks a format
// with a few differences (Mistral's chat, OpenAI's legacy completions).
func (f *Format) variant(edit func(*Format)) *Format {
	v := *f
	edit(&v)
	return &v
}

// List is the format of model lists and other bodiless GETs.
var List = &Format{Name: "list"}

// MaxOutputLimit bounds a requested output limit: far above any model's,
// far below what would wrap an int32 in an upstream's parser.
const MaxOutputLimit = 1 << 30

// maxLimitPaths bounds the output-limit paths of a format (MaxTokens).
const maxLimitPaths = 4

// Request is what the proxy learnt from (and changed in) a request body.
type Request struct {
	Body  []byte // as forwarded
	Model string // the last "model" member's, as the upstreams read it
	// ModelRepeated: the body names the model more than once, not all
	// alike.
	ModelRepeated bool
	Stream        bool
	// MaxOut is the output limit as forwarded (clamped); HasMaxOut is false
	// when the forwarded request names none.
	MaxOut    int64
	HasMaxOut bool
	// ZeroLimit: a limit the forwarded request names is 0, which Gemini
	// reads as none (the clamp replaces it, so only unclamped requests
	// forward one).
	ZeroLimit bool
	// LimitAdded: the client named no limit; MaxOut is the clamp, which
	// Parse added at the format's AddMaxTokens.
	LimitAdded bool
	// Limit is the clamp applied to output limits (0: none): a
	// translation that must name a limit the client did not name stays
	// under it.
	Limit int64
	// PromptTokens estimates the prompt: a quarter of its text bytes.
	PromptTokens int64
	// HideUsage: the proxy asked for streamed usage the client did not ask
	// for, so the usage-only chunk is not relayed.
	HideUsage bool
	// Thinking: the request asks for reasoning the answer may not show.
	Thinking bool
	// Stored: the request names context the upstream holds (Format.Stored):
	// its prompt is more than PromptTokens estimates.
	Stored bool
	// MakesImages: the request gives an image generation tool
	// (Format.ImageTools).
	MakesImages bool
	// ImagePrice is one image's output tokens, ImagesReserved the images
	// the quota reserves in the image family (Format.ImagePrice).
	ImagePrice, ImagesReserved int64
	// Native follows the native stream behind a translated one (set by
	// the translation; nil otherwise): the translation tells the usage
	// only at its end, the native stream may have reported it earlier.
	Native *StreamState
	// Priced is the output an answer that reports no usage is charged,
	// and the quota check counts (Format.Price); 0: the answer's
	// estimate, the request's output limit counted.
	Priced int64
	// Reserve, when set, is asked by a translation for the memory it may
	// take (bytes, costOfTranslating) before it decodes the body's items;
	// its error refuses the request.
	Reserve func(bytes int64) error
}

// Parse reads a request body once: model, stream, output limit. A body that
// is not a JSON object fails with jsonscan.ErrSyntax; an output limit that
// is not a whole number in range, with a *users.Error to show. It clamps
// the output limit to limit (when clamp and limit > 0), adding it where
// the request names none, and asks streams for usage where the format
// must, editing only those bytes. With inPlace the edits may be made in
// body itself (the caller's own copy); otherwise body is left unchanged.
func (f *Format) Parse(body []byte, limit int64, clamp, inPlace bool) (*Request, error) {
	rq := &Request{Body: body, Model: f.DefaultModel}
	if clamp && limit > 0 {
		rq.Limit = limit
	}
	// One pass reads every member the proxy cares about without keeping
	// the others: a body of a million repeated keys costs no more memory
	// than its bytes.
	var model, streamOpts, limitParent jsonscan.Member
	var hasModel, hasStreamOpts, hasLimitParent bool
	clamps, grow := 0, false
	var limBuf [20]byte
	lim := strconv.AppendInt(limBuf[:0], limit, 10)
	// The limit each path names (its last occurrence, as in the
	// upstream's parser); where a body names two (max_tokens and
	// max_completion_tokens) and an upstream may take either, the larger
	// is what the quota reserves and a cut stream is charged.
	var limits [maxLimitPaths]struct {
		n   int64
		set bool
	}
	onLimit := func(path []string, start, end int) error {
		v := body[start:end]
		null := jsonscan.IsNull(v)
		var n int64
		if !null {
			var err error
			if n, err = outputLimit(path, v); err != nil {
				return err
			}
		}
		if clamp && limit > 0 && f.unclamped(path, n, null, limit) {
			n = limit
			clamps++
			grow = grow || len(lim) > end-start
		} else if null {
			return nil
		}
		for i := range min(len(f.MaxTokens), maxLimitPaths) {
			if slices.Equal(f.MaxTokens[i], path) {
				limits[i].n, limits[i].set = n, true
			}
		}
		return nil
	}
	onThinking := func(_ []string, start, end int) error {
		rq.Thinking = rq.Thinking || thinkingOn(body[start:end])
		return nil
	}
	onSingle := func(path []string, start, end int) error {
		if v := body[start:end]; !jsonscan.IsNull(v) && !isOne(v) {
			return users.Errorf(users.CodeInvalid, "%s: only one answer can be asked for per request.", strings.Join(path, "."))
		}
		return nil
	}
	onUnserved := func(path []string, start, end int) error {
		switch string(body[start:end]) {
		case "null", "false":
			return nil
		}
		return users.Errorf(users.CodeInvalid, "%s: this proxy does not serve such requests (their usage is not in the answer); leave it out or set it to false.", strings.Join(path, "."))
	}
	onStoredItems := func(_ []string, start, end int) error {
		rq.Stored = rq.Stored || body[start] == '[' && hasItemOfType(body[start:end], "item_reference")
		return nil
	}
	onImageTools := func(_ []string, start, end int) error {
		rq.MakesImages = rq.MakesImages || body[start] == '[' && hasItemOfType(body[start:end], "image_generation")
		return nil
	}
	var ids int64
	onTokenIDs := func(_ []string, start, end int) error {
		if body[start] == '[' {
			ids += countNumbers(body[start:end])
		}
		return nil
	}
	onOperatorRef := func(path []string, start, end int) error {
		if jsonscan.IsNull(body[start:end]) {
			return nil
		}
		return users.Errorf(users.CodeInvalid, "%s: it names an object stored on this proxy's account (a stored prompt or a context cache), which this proxy does not lend; send its content in the request instead.", strings.Join(path, "."))
	}
	onStored := func(_ []string, start, end int) error {
		rq.Stored = rq.Stored || !jsonscan.IsNull(body[start:end])
		return nil
	}
	close, text, err := jsonscan.Walk(body, 0, true, func(key []byte, start, end int) error {
		switch string(key) {
		case "model":
			if hasModel && !bytes.Equal(body[model.Start:model.End], body[start:end]) {
				rq.ModelRepeated = true
			}
			model, hasModel = jsonscan.Member{Start: start, End: end}, true
		case "stream":
			rq.Stream = string(body[start:end]) == "true"
		case "stream_options":
			streamOpts, hasStreamOpts = jsonscan.Member{Start: start, End: end}, true
		}
		if len(f.AddMaxTokens) == 2 && limitParentKey(f.MaxTokens, key) {
			limitParent, hasLimitParent = jsonscan.Member{Start: start, End: end}, true
			// A parent given again replaces the earlier one in the
			// upstream's parser: only its own limit counts, and where it
			// names none the clamp is added to it.
			limits = [maxLimitPaths]struct {
				n   int64
				set bool
			}{}
		}
		if err := atPaths(body, f.MaxTokens, key, start, end, onLimit); err != nil {
			return err
		}
		if err := atPaths(body, f.Single, key, start, end, onSingle); err != nil {
			return err
		}
		if err := atPaths(body, f.Unserved, key, start, end, onUnserved); err != nil {
			return err
		}
		if err := atPaths(body, f.Stored, key, start, end, onStored); err != nil {
			return err
		}
		if err := atPaths(body, f.OperatorRefs, key, start, end, onOperatorRef); err != nil {
			return err
		}
		if err := atPaths(body, f.TokenIDs, key, start, end, onTokenIDs); err != nil {
			return err
		}
		if err := atPaths(body, f.StoredItems, key, start, end, onStoredItems); err != nil {
			return err
		}
		if err := atPaths(body, f.ImageTools, key, start, end, onImageTools); err != nil {
			return err
		}
		return atPaths(body, f.Thinking, key, start, end, onThinking)
	})
	if err != nil {
		return nil, err
	}
	for _, l := range limits {
		if l.set {
			rq.MaxOut, rq.HasMaxOut = max(rq.MaxOut, l.n), true
			rq.ZeroLimit = rq.ZeroLimit || l.n == 0
		}
	}
	rq.PromptTokens = (text+3)/4 + ids
	sendModel := f.SendModel && f.DefaultModel != ""
	if hasModel {
		if s, err := jsonscan.Unquote(body[model.Start:model.End]); err == nil && s != "" {
			rq.Model, sendModel = s, false
		}
	}
	if clamps > 0 {
		// A second pass writes the clamped limits: in place, the bytes
		// only move left, unless a limit grows in length (1e9 → 1024).
		body, err = f.clampAll(body, lim, inPlace && !grow)
		if err != nil {
			return nil, err
		}
		if hasStreamOpts || sendModel || f.AskUsage != nil && rq.Stream {
			// Offsets moved: find the members edited next again.
			if close, _, err = jsonscan.Walk(body, 0, true, func(key []byte, start, end int) error {
				switch string(key) {
				case "stream_options":
					streamOpts = jsonscan.Member{Start: start, End: end}
				case "model":
					model = jsonscan.Member{Start: start, End: end}
				}
				return nil
			}); err != nil {
				return nil, err
			}
		}
		inPlace = true // body is now the proxy's own
	}
	var edits []jsonscan.Edit
	if sendModel {
		quoted := `"` + f.DefaultModel + `"`
		if hasModel { // null, "" or not a string
			edits = append(edits, jsonscan.Edit{Start: model.Start, End: model.End, Repl: []byte(quoted)})
		} else {
			sep := ","
			if jsonscan.EmptyObject(body[:close+1]) {
				sep = ""
			}
			edits = append(edits, jsonscan.Edit{Start: close, End: close, Repl: []byte(sep + `"model":` + quoted)})
		}
	}
	if rq.Limit > 0 && !rq.HasMaxOut && f.AddMaxTokens != nil {
		// No limit named: the upstream's would be the model's maximum,
		// while the quota reserves and a cut stream charges the clamp.
		var parent *jsonscan.Member
		if hasLimitParent {
			parent = &limitParent
		}
		if e, ok := f.addLimit(body, close, parent, lim); ok {
			edits = append(edits, e)
			rq.MaxOut, rq.HasMaxOut, rq.LimitAdded = limit, true, true
		}
	}
	if f.AskUsage != nil && rq.Stream {
		var so *jsonscan.Member
		if hasStreamOpts {
			// A copy: the hook's argument escapes, and streamOpts itself
			// would then be allocated for every request.
			opts := streamOpts
			so = &opts
		}
		ask, hide, err := f.AskUsage(body, close, so)
		if err != nil {
			return nil, err
		}
		if edits == nil {
			edits = ask // no copy, on the hot path
		} else {
			edits = append(edits, ask...)
		}
		rq.HideUsage = hide
	}
	rq.Body = jsonscan.ApplyEdits(body, edits, inPlace)
	return rq, nil
}

// limitParentKey reports a top-level key that holds output limits
// (Google's generationConfig).
func limitParentKey(paths [][]string, key []byte) bool {
	for _, p := range paths {
		if len(p) == 2 && string(key) == p[0] {
			return true
		}
	}
	return false
}

// addLimit is the edit that writes lim at f.AddMaxTokens in a body that
// names no limit: a member before the body's closing brace (close), or in
// the parent object the body has (nil: none), which a null parent becomes.
// A parent of another type is left to the upstream to refuse.
func (f *Format) addLimit(body []byte, close int, parent *jsonscan.Member, lim []byte) (jsonscan.Edit, bool) {
	name := f.AddMaxTokens[len(f.AddMaxTokens)-1]
	member := `"` + name + `":` + string(lim)
	if len(f.AddMaxTokens) == 2 {
		switch {
		case parent == nil:
			member = `"` + f.AddMaxTokens[0] + `":{` + member + `}`
		case body[parent.Start] == '{':
			obj := body[parent.Start:parent.End]
			at := parent.End - 1
			if !jsonscan.EmptyObject(obj) {
				member = "," + member
			}
			return jsonscan.Edit{Start: at, End: at, Repl: []byte(member)}, true
		case jsonscan.IsNull(body[parent.Start:parent.End]):
			return jsonscan.Edit{Start: parent.Start, End: parent.End, Repl: []byte("{" + member + "}")}, true
		default:
			return jsonscan.Edit{}, false
		}
	}
	if !jsonscan.EmptyObject(body[:close+1]) {
		member = "," + member
	}
	return jsonscan.Edit{Start: close, End: close, Repl: []byte(member)}, true
}

// atPaths calls fn for the member (key, value at start:end) of a top-level
// object if it lies at one of paths (one or two levels deep), or for the
// members of its value that do.
func atPaths(body []byte, paths [][]string, key []byte, start, end int, fn func(path []string, start, end int) error) error {
	for _, path := range paths {
		if string(key) != path[0] {
			continue
		}
		if len(path) == 1 {
			if err := fn(path, start, end); err != nil {
				return err
			}
			continue
		}
		if body[start] != '{' {
			continue
		}
		if _, _, err := jsonscan.Walk(body[:end], start, false, func(k []byte, s, e int) error {
			if string(k) == path[1] {
				return fn(path, s, e)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// outputLimit reads a requested output limit: only a whole number in
// range may reach the upstream (a string, fraction or huge value would
// pass the clamp and the quota's count unread, and some upstreams take it
// all the same). A whole number written otherwise (1e5) is one.
func outputLimit(path []string, v []byte) (int64, error) {
	n, ok := jsonscan.ParseInt(v)
	if !ok {
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil || f != math.Trunc(f) || f < 0 || f > MaxOutputLimit {
			return 0, limitError(path)
		}
		n = int64(f)
	}
	if n < 0 || n > MaxOutputLimit {
		return 0, limitError(path)
	}
	return n, nil
}

// clampAll rewrites every output limit above lim (already validated) as
// lim, in one pass: in body itself when inPlace (every replacement is no
// longer than what it replaces, so bytes only move left), else in a copy.
func (f *Format) clampAll(body, lim []byte, inPlace bool) ([]byte, error) {
	limit, _ := jsonscan.ParseInt(lim)
	out := body[:0]
	if !inPlace {
		out = make([]byte, 0, len(body)+len(body)/2)
	}
	at := 0 // body[at:] is not yet in out
	onLimit := func(path []string, start, end int) error {
		v := body[start:end]
		null := jsonscan.IsNull(v)
		var n int64
		if !null {
			n, _ = outputLimit(nil, v)
		}
		if !f.unclamped(path, n, null, limit) {
			return nil
		}
		out = append(out, body[at:start]...) // moves left, or copies
		out = append(out, lim...)
		at = end
		return nil
	}
	if _, _, err := jsonscan.Walk(body, 0, true, func(key []byte, start, end int) error {
		return atPaths(body, f.MaxTokens, key, start, end, onLimit)
	}); err != nil {
		return nil, err
	}
	return append(out, body[at:]...), nil
}

// unclamped reports an output limit at path the clamp must replace: above
// it, or one that leaves the model's own maximum: 0 (Gemini reads it as
// unset), and null where the clamp would be added (elsewhere a null stays,
// and the clamp is added beside it: o-series models refuse max_tokens).
func (f *Format) unclamped(path []string, n int64, null bool, limit int64) bool {
	if null {
		return slices.Equal(path, f.AddMaxTokens)
	}
	return n == 0 || n > limit
}

// hasItemOfType reports an item of a JSON array of objects whose type is
// typ: any of its type members (a repeated member is read whichever
// occurrence the upstream takes).
func hasItemOfType(items []byte, typ string) bool {
	found := false
	gjson.ParseBytes(items).ForEach(func(_, item gjson.Result) bool {
		item.ForEach(func(k, v gjson.Result) bool {
			found = k.String() == "type" && v.String() == typ
			return !found
		})
		return !found
	})
	return found
}

// countNumbers counts the numbers in a JSON value (already validated):
// the token ids of a prompt given as ids.
func countNumbers(v []byte) int64 {
	var n int64
	inString, escaped, inNumber := false, false, false
	for _, c := range v {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString, inNumber = true, false
		case c == '-' || c >= '0' && c <= '9':
			if !inNumber {
				n++
				inNumber = true
			}
		case c == '.' || c == '+' || c == 'e' || c == 'E':
			// within a number (1e5), or a letter of true and false
		default:
			inNumber = false
		}
	}
	return n
}

// isOne reports a JSON value that is the number 1 (1.0 and 1e0 too).
func isOne(v []byte) bool {
	if string(v) == "1" {
		return true
	}
	f, err := strconv.ParseFloat(string(v), 64)
	return err == nil && f == 1
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
	// Images counts the images an image tool made; ImageTokens is what
	// the tool reported it used, when HaveImageTokens.
	Images          int64
	ImageTokens     int64
	HaveImageTokens bool
	// Unread: a native event too big to hold (framing.Cut) was dropped
	// by a translation unread; the relay charges it as it does a cut
	// event of its own (set on the native state, cleared by the relay).
	Unread bool
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

// Filled is st with the counts native reported where st has none: a
// translated stream tells its usage only in its last chunk, so one cut
// short is charged the input its native stream reported (Request.Native).
// A nil native leaves st as it is.
func (st *StreamState) Filled(native *StreamState) *StreamState {
	if native == nil {
		return st
	}
	f := *st
	if !f.HaveIn && native.HaveIn {
		f.U.Input, f.HaveIn = native.U.Input, true
	}
	if !f.HaveOut {
		f.U.Output = max(f.U.Output, native.U.Output)
	}
	return &f
}

// EstimateAnswer estimates the usage of a whole answer that reported
// none (some gateways, DALL-E): a quarter of its text bytes. ok is false
// when the answer is not a JSON object (Google's alt=proto, JSPB arrays,
// plain text): its text cannot be told from the rest.
func EstimateAnswer(body []byte) (tokens int64, ok bool) {
	_, text, err := jsonscan.Walk(body, 0, true, func([]byte, int, int) error { return nil })
	return (text + 3) / 4, err == nil
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

// plainJSON encodes what a translation writes (a native request body, a
// translated answer or chunk) as MustJSON does but without escaping
// HTML's <, > and & (as \u003c): a byte read would become six written,
// and a request or answer of them would take some fifty times its size
// to translate, past what the translation reserved or weighed of the
// memory budget (costOfTranslating, TranslatedAnswerCost). No upstream
// reads its request as HTML, and no client may read an answer as HTML
// (the proxy serves every answer with nosniff and a sandbox).
func plainJSON(v any) []byte {
	var w copyWriter
	enc := json.NewEncoder(&w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err) // only maps of plain values are encoded
	}
	return w.b
}

// copyWriter keeps a copy of what an Encoder writes, its closing newline
// left out, in a slice of exactly its size (a bytes.Buffer would round it
// up, by up to half of it, as json.Marshal does not).
type copyWriter struct{ b []byte }

func (w *copyWriter) Write(p []byte) (int, error) {
	q := bytes.TrimSuffix(p, []byte("\n"))
	if w.b == nil {
		w.b = make([]byte, 0, len(q))
	}
	w.b = append(w.b, q...)
	return len(p), nil
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

// thinkingOn reports whether a Thinking member's value asks for hidden
// reasoning. Off are null, false and 0, OpenAI's effort "none" (as
// reasoning_effort or Responses' reasoning.effort), Claude's
// {"type":"disabled"} and Gemini's thinking budget 0, however spaced.
func thinkingOn(v []byte) bool {
	r := gjson.ParseBytes(v)
	switch r.Type {
	case gjson.Null, gjson.False:
		return false
	case gjson.Number:
		return r.Num != 0
	case gjson.String:
		return r.Str != "none"
	case gjson.JSON:
		if !r.IsObject() {
			return true
		}
		// Each member's last occurrence counts, as in the upstream's
		// parser: a repeated member cannot turn reasoning off here only.
		on := true
		r.ForEach(func(k, m gjson.Result) bool {
			switch k.Str {
			case "type":
				on = !(m.Type == gjson.String && m.Str == "disabled")
			case "effort":
				on = !(m.Type == gjson.String && m.Str == "none")
			case "thinkingBudget", "thinking_budget":
				on = !(m.Type == gjson.Number && m.Num == 0)
			}
			return true
		})
		return on
	}
	return true
}
