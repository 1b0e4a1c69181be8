package upstreamfake

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Bedrock imitates AWS Bedrock's runtime (InvokeModel and
// InvokeModelWithResponseStream, for Anthropic and Mistral models) and the
// control plane's ListFoundationModels. Every request must carry a SigV4
// signature that the fake recomputes with the SDK's signer from the
// secret BedrockSecret gives the access key; a wrong one gets Bedrock's
// 403. Streams are binary event-stream frames built with the SDK's
// encoder. When the base URL a test configures ends in "/{region}", the
// path's first segment must be the credential's region.
const Bedrock Kind = "aws"

// BedrockSecret is the secret access key the fake accepts for an access
// key ID; access key IDs starting with "UNKNOWN" are not known at all.
func BedrockSecret(accessKey string) string { return "secret-of-" + accessKey }

// bedrockModels are the model IDs the fake serves; profileOnly ones must
// be called through a cross-region inference profile (us., eu., apac.).
var bedrockModels = map[string]bool{
	"anthropic.claude-3-haiku-20240307-v1:0":    false,
	"anthropic.claude-3-opus-20240229-v1:0":     false,
	"anthropic.claude-3-5-sonnet-20241022-v2:0": false,
	"anthropic.claude-sonnet-4-5-20250929-v1:0": true,
	"anthropic.claude-opus-4-1-20250805-v1:0":   true,
	"anthropic.claude-haiku-4-5-20251001-v1:0":  true,
	"mistral.mistral-large-2407-v1:0":           false,
	"mistral.mistral-7b-instruct-v0:2":          false,
	"mistral.mixtral-8x7b-instruct-v0:1":        false,
	"mistral.mistral-small-2402-v1:0":           false,
}

var awsAuthorization = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=[0-9a-f]{64}$`)

func bedrockAccessKey(r *http.Request) string {
	if m := awsAuthorization.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		return m[1]
	}
	return ""
}

// bedrockError answers as Bedrock does: the exception in x-amzn-ErrorType,
// the message in the body.
func bedrockError(x *exchange, status int, typ, msg string) {
	x.w.Header().Set("X-Amzn-Errortype", typ+":http://internal.amazon.com/coral/com.amazon.bedrock/")
	x.w.Header().Set("X-Amzn-Requestid", "fake-request-id")
	x.json(status, map[string]any{"message": msg})
}

var bedrockStatusErrors = map[int][2]string{
	http.StatusBadRequest:          {"ValidationException", "The fake upstream was told to fail."},
	http.StatusForbidden:           {"AccessDeniedException", "You don't have access to the model with the specified model ID."},
	http.StatusNotFound:            {"ResourceNotFoundException", "The fake upstream was told to fail."},
	http.StatusTooManyRequests:     {"ThrottlingException", "Too many requests, please wait before trying again."},
	http.StatusInternalServerError: {"InternalServerException", "The fake upstream was told to fail."},
	http.StatusServiceUnavailable:  {"ServiceUnavailableException", "Bedrock is unable to process your request."},
}

func bedrockStatus(x *exchange, status int) {
	e, ok := bedrockStatusErrors[status]
	if !ok {
		e = [2]string{"InternalServerException", "The fake upstream was told to fail."}
	}
	bedrockError(x, status, e[0], e[1])
}

// verifySigV4 recomputes the request's signature; it answers the error
// and reports false when it does not hold.
func verifySigV4(x *exchange) bool {
	auth := x.r.Header.Get("Authorization")
	m := awsAuthorization.FindStringSubmatch(auth)
	if m == nil {
		bedrockError(x, http.StatusForbidden, "MissingAuthenticationTokenException", "Missing Authentication Token")
		return false
	}
	akid, day, region, service, signed := m[1], m[2], m[3], m[4], strings.Split(m[5], ";")
	if strings.HasPrefix(akid, "UNKNOWN") {
		bedrockError(x, http.StatusForbidden, "UnrecognizedClientException", "The security token included in the request is invalid.")
		return false
	}
	at, err := time.Parse("20060102T150405Z", x.r.Header.Get("X-Amz-Date"))
	if err != nil || at.Format("20060102") != day || !slices.Contains(signed, "host") || !slices.Contains(signed, "x-amz-date") {
		bedrockError(x, http.StatusForbidden, "InvalidSignatureException", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")
		return false
	}
	u := "http://" + x.r.Host + x.r.URL.EscapedPath()
	if x.r.URL.RawQuery != "" {
		u += "?" + x.r.URL.RawQuery
	}
	again, err := http.NewRequest(x.r.Method, u, nil)
	if err != nil {
		bedrockError(x, http.StatusBadRequest, "ValidationException", "bad request URL")
		return false
	}
	for _, name := range signed {
		switch name {
		case "host":
		case "content-length":
			again.ContentLength = x.r.ContentLength
		default:
			again.Header[http.CanonicalHeaderKey(name)] = x.r.Header.Values(name)
		}
	}
	sum := sha256.Sum256(x.req.Body)
	creds := aws.Credentials{AccessKeyID: akid, SecretAccessKey: BedrockSecret(akid)}
	if err := v4.NewSigner().SignHTTP(x.r.Context(), creds, again, hex.EncodeToString(sum[:]), service, region, at); err != nil || again.Header.Get("Authorization") != auth {
		bedrockError(x, http.StatusForbidden, "InvalidSignatureException", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
		return false
	}
	if service != "bedrock" {
		bedrockError(x, http.StatusForbidden, "InvalidSignatureException", "Credential should be scoped to correct service: 'bedrock'.")
		return false
	}
	// A base URL of the form http://host/{region} puts the region first.
	if first, _, _ := strings.Cut(strings.TrimPrefix(x.r.URL.Path, "/"), "/"); awsRegionSegment.MatchString(first) && first != region {
		bedrockError(x, http.StatusForbidden, "InvalidSignatureException", "Credential should be scoped to a valid region, not '"+region+"'.")
		return false
	}
	return true
}

var awsRegionSegment = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$`)

func serveBedrock(x *exchange) {
	if !verifySigV4(x) {
		return
	}
	if s := x.keyStatus(Bedrock); s != 0 {
		bedrockStatus(x, s)
		return
	}
	path := x.r.URL.Path
	if first, rest, ok := strings.Cut(strings.TrimPrefix(path, "/"), "/"); ok && awsRegionSegment.MatchString(first) {
		path = "/" + rest
	}
	if x.r.Method == http.MethodGet && path == "/foundation-models" {
		serveFoundationModels(x)
		return
	}
	rest, ok := strings.CutPrefix(path, "/model/")
	id, action, _ := strings.Cut(rest, "/")
	if !ok || x.r.Method != http.MethodPost || (action != "invoke" && action != "invoke-with-response-stream" && action != "count-tokens") {
		bedrockError(x, http.StatusNotFound, "UnknownOperationException", "Unknown operation "+x.r.Method+" "+path)
		return
	}
	base := id
	if p, after, ok := strings.Cut(id, "."); ok && (p == "us" || p == "eu" || p == "apac") {
		base = after
	}
	profileOnly, known := bedrockModels[base]
	switch {
	case !known:
		bedrockError(x, http.StatusBadRequest, "ValidationException", "The provided model identifier is invalid.")
		return
	case action == "count-tokens" && base != id:
		bedrockError(x, http.StatusBadRequest, "ValidationException", "The provided model identifier is invalid.")
		return
	case profileOnly && base == id && action != "count-tokens":
		bedrockError(x, http.StatusBadRequest, "ValidationException", "Invocation of model ID "+id+" with on-demand throughput isn't supported. Retry your request with the ID or ARN of an inference profile that contains this model.")
		return
	}
	if x.b.Status != 0 {
		bedrockStatus(x, x.b.Status)
		return
	}
	anthropic := strings.HasPrefix(base, "anthropic.")
	if action == "count-tokens" {
		bedrockCountTokens(x, anthropic)
		return
	}
	text := strings.Contains(base, "-7b-instruct") || strings.Contains(base, "8x7b-instruct")
	m := x.body()
	if msg := bedrockBodyProblem(m, anthropic, text); msg != "" {
		bedrockError(x, http.StatusBadRequest, "ValidationException", "Malformed input request: "+msg+", please reformat your input and try again.")
		return
	}
	stream := action == "invoke-with-response-stream"
	switch {
	case anthropic && claudeThinkingProblem(m) != "":
		bedrockError(x, http.StatusBadRequest, "ValidationException", claudeThinkingProblem(m))
	case anthropic && stream:
		bedrockClaudeStream(x, id)
	case anthropic:
		bedrockCounts(x)
		content, stop := anthropicContent(x)
		x.json(http.StatusOK, message(x, map[string]any{"model": id}, content, stop, x.b.OutputTokens))
	case stream:
		bedrockMistralStream(x, text)
	case text:
		bedrockCounts(x)
		x.json(http.StatusOK, map[string]any{"outputs": []any{map[string]any{"text": x.b.Text, "stop_reason": "stop"}}})
	default:
		bedrockCounts(x)
		x.json(http.StatusOK, map[string]any{"choices": []any{map[string]any{"index": 0,
			"message": map[string]any{"role": "assistant", "content": x.b.Text}, "stop_reason": "stop"}}})
	}
}

// bedrockBodyProblem validates a body as Bedrock does: its own version
// field for Anthropic models, and no member it does not know.
func bedrockBodyProblem(m map[string]any, anthropic, text bool) string {
	allowed := []string{"messages", "max_tokens", "temperature", "top_p", "stop", "tools", "tool_choice"}
	if text {
		// Mistral 7B and Mixtral take an instruction prompt.
		if p, _ := m["prompt"].(string); !strings.HasPrefix(p, "<s>[INST]") {
			return "#: required key [prompt] not found"
		}
		for k := range m {
			if !slices.Contains([]string{"prompt", "max_tokens", "temperature", "top_p", "top_k", "stop"}, k) {
				return "#: extraneous key [" + k + "] is not permitted"
			}
		}
		return ""
	}
	if anthropic {
		if v, _ := m["anthropic_version"].(string); v != "bedrock-2023-05-31" {
			return "#: required key [anthropic_version] not found"
		}
		allowed = []string{"anthropic_version", "anthropic_beta", "messages", "system", "max_tokens", "stop_sequences",
			"temperature", "top_k", "top_p", "tools", "tool_choice", "thinking"}
	}
	if _, ok := m["messages"]; !ok {
		return "#: required key [messages] not found"
	}
	for k := range m {
		if !slices.Contains(allowed, k) {
			return "#: extraneous key [" + k + "] is not permitted"
		}
	}
	return ""
}

func bedrockCounts(x *exchange) {
	if x.b.NoUsage {
		return
	}
	x.w.Header().Set("X-Amzn-Bedrock-Input-Token-Count", strconv.FormatInt(x.b.InputTokens, 10))
	x.w.Header().Set("X-Amzn-Bedrock-Output-Token-Count", strconv.FormatInt(x.b.OutputTokens, 10))
}

func (x *exchange) startEventStream() {
	x.w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
	x.w.Header().Set("X-Amzn-Bedrock-Content-Type", "application/json")
	x.w.WriteHeader(http.StatusOK)
	x.flush()
}

// frame writes one event-stream message and flushes it.
func (x *exchange) frame(headers eventstream.Headers, payload []byte) bool {
	if x.r.Context().Err() != nil {
		return false
	}
	var buf bytes.Buffer
	if err := eventstream.NewEncoder().Encode(&buf, eventstream.Message{Headers: headers, Payload: payload}); err != nil {
		panic(err)
	}
	if _, err := x.w.Write(buf.Bytes()); err != nil {
		return false
	}
	x.flush()
	return true
}

// chunk sends one InvokeModelWithResponseStream chunk: the model's event,
// base64 in "bytes", as Bedrock frames it.
func (x *exchange) chunk(event map[string]any) bool {
	raw, _ := json.Marshal(event)
	payload, _ := json.Marshal(map[string]any{"bytes": base64.StdEncoding.EncodeToString(raw), "p": "abcdefghijklmnopqrstuvwxyz"})
	var h eventstream.Headers
	h.Set(":event-type", eventstream.StringValue("chunk"))
	h.Set(":content-type", eventstream.StringValue("application/json"))
	h.Set(":message-type", eventstream.StringValue("event"))
	return x.frame(h, payload)
}

// exception sends a stream exception frame, as Bedrock does when it fails
// midway.
func (x *exchange) exception(typ, msg string) {
	payload, _ := json.Marshal(map[string]any{"message": msg})
	var h eventstream.Headers
	h.Set(":exception-type", eventstream.StringValue(typ))
	h.Set(":content-type", eventstream.StringValue("application/json"))
	h.Set(":message-type", eventstream.StringValue("exception"))
	x.frame(h, payload)
}

func (x *exchange) invocationMetrics() map[string]any {
	return map[string]any{"inputTokenCount": x.b.InputTokens, "outputTokenCount": x.b.OutputTokens,
		"invocationLatency": 420, "firstByteLatency": 42}
}

// streamPieces sends the text pieces with each's pauses, holds and cuts;
// it reports whether the stream goes on.
func (x *exchange) streamPieces(send func(piece string) bool) bool {
	for _, piece := range x.pieces() {
		if x.chunks > 0 && !x.wait(x.b.ChunkPause) {
			return false
		}
		if !send(piece) || !x.afterChunk() {
			return false
		}
		if x.b.BedrockException != "" {
			x.exception(x.b.BedrockException, "The fake upstream was told to fail midway.")
			return false
		}
		if x.b.StreamError != "" {
			x.exception("modelStreamErrorException", x.b.StreamError)
			return false
		}
	}
	return true
}

func bedrockClaudeStream(x *exchange, id string) {
	x.startEventStream()
	start := message(x, map[string]any{"model": id}, []any{}, nil, 1)
	if !x.chunk(map[string]any{"type": "message_start", "message": start}) {
		return
	}
	reason := "end_turn"
	if x.b.Blocks != nil {
		emit := func(_ string, data map[string]any) bool { return x.chunk(data) }
		fail := func(msg string) { x.exception("modelStreamErrorException", msg) }
		var ok bool
		if reason, ok = scriptedClaudeStream(x, emit, fail); !ok {
			return
		}
	} else {
		if !x.chunk(map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "text", "text": ""}}) {
			return
		}
		if !x.streamPieces(func(piece string) bool {
			return x.chunk(map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "text_delta", "text": piece}})
		}) {
			return
		}
		if !x.chunk(map[string]any{"type": "content_block_stop", "index": 0}) {
			return
		}
		if x.b.ToolCall != nil {
			if !anthropicToolStream(x, func(_ string, data map[string]any) bool { return x.chunk(data) }) {
				return
			}
			reason = "tool_use"
		}
	}
	delta := map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": reason, "stop_sequence": nil}}
	stop := map[string]any{"type": "message_stop"}
	if !x.b.NoUsage {
		delta["usage"] = map[string]any{"output_tokens": x.b.OutputTokens}
		stop["amazon-bedrock-invocationMetrics"] = x.invocationMetrics()
	}
	x.holdBeforeUsage()
	if x.chunk(delta) {
		x.chunk(stop)
	}
}

func bedrockMistralStream(x *exchange, text bool) {
	x.startEventStream()
	choice := func(content string, stop any) map[string]any {
		if text {
			return map[string]any{"outputs": []any{map[string]any{"text": content, "stop_reason": stop}}}
		}
		return map[string]any{"choices": []any{map[string]any{"index": 0,
			"message": map[string]any{"role": "assistant", "content": content}, "stop_reason": stop}}}
	}
	if !x.streamPieces(func(piece string) bool { return x.chunk(choice(piece, nil)) }) {
		return
	}
	last := choice("", "stop")
	if !x.b.NoUsage {
		last["amazon-bedrock-invocationMetrics"] = x.invocationMetrics()
	}
	x.holdBeforeUsage()
	x.chunk(last)
}

// bedrockCountTokens answers CountTokens: the InvokeModel body it counts
// comes base64 in input.invokeModel.body and is validated as one.
func bedrockCountTokens(x *exchange, anthropic bool) {
	var in struct {
		Input struct {
			InvokeModel struct {
				Body string `json:"body"`
			} `json:"invokeModel"`
		} `json:"input"`
	}
	if json.Unmarshal(x.req.Body, &in) != nil || in.Input.InvokeModel.Body == "" {
		bedrockError(x, http.StatusBadRequest, "ValidationException", "Malformed input request: #: required key [input] not found")
		return
	}
	raw, err := base64.StdEncoding.DecodeString(in.Input.InvokeModel.Body)
	if err != nil {
		bedrockError(x, http.StatusBadRequest, "ValidationException", "input.invokeModel.body is not base64")
		return
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || !anthropic {
		bedrockError(x, http.StatusBadRequest, "ValidationException", "The model does not support counting tokens.")
		return
	}
	if msg := bedrockBodyProblem(m, true, false); msg != "" {
		bedrockError(x, http.StatusBadRequest, "ValidationException", "Malformed input request: "+msg+", please reformat your input and try again.")
		return
	}
	x.json(http.StatusOK, map[string]any{"inputTokens": x.b.InputTokens})
}

// bedrockProviders are the vendors as ListFoundationModels names them.
var bedrockProviders = map[string]string{"anthropic": "Anthropic", "mistral": "Mistral AI"}

// serveFoundationModels answers ListFoundationModels in ID order, of the
// vendor byProvider names (any case) or of all: a model served through
// inference profiles only says so, and each Claude model also has a
// provisioned-throughput-only variant (…:200k) as Bedrock lists them.
func serveFoundationModels(x *exchange) {
	by := x.r.URL.Query().Get("byProvider")
	ids := make([]string, 0, len(bedrockModels))
	for id := range bedrockModels {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	sums := []any{}
	for _, id := range ids {
		provider := bedrockProviders[strings.SplitN(id, ".", 2)[0]]
		if by != "" && !strings.EqualFold(by, provider) {
			continue
		}
		types := []string{"ON_DEMAND"}
		if bedrockModels[id] {
			types = []string{"INFERENCE_PROFILE"}
		}
		sum := func(id string, types []string) map[string]any {
			return map[string]any{"modelArn": "arn:aws:bedrock:us-east-1::foundation-model/" + id, "modelId": id,
				"providerName": provider, "inputModalities": []string{"TEXT"}, "outputModalities": []string{"TEXT"},
				"responseStreamingSupported": true, "inferenceTypesSupported": types, "modelLifecycle": map[string]any{"status": "ACTIVE"}}
		}
		sums = append(sums, sum(id, types))
		if provider == "Anthropic" {
			sums = append(sums, sum(id+":200k", []string{"PROVISIONED"}))
		}
	}
	x.json(http.StatusOK, map[string]any{"modelSummaries": sums})
}
