package providers

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/tidwall/gjson"

	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/users"
)

func TestBedrockModelID(t *testing.T) {
	for _, tc := range []struct {
		table         map[string]bedrockID
		model, region string
		want          string
	}{
		{claudeOnBedrock, "claude-sonnet-4-5", "us-east-1", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"},
		{claudeOnBedrock, "claude-sonnet-4-5-20250929", "us-west-2", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"},
		{claudeOnBedrock, "claude-opus-4-1", "eu-central-1", "eu.anthropic.claude-opus-4-1-20250805-v1:0"},
		{claudeOnBedrock, "claude-3-7-sonnet-latest", "ap-northeast-1", "apac.anthropic.claude-3-7-sonnet-20250219-v1:0"},
		{claudeOnBedrock, "claude-3-5-sonnet-20241022", "eu-west-3", "anthropic.claude-3-5-sonnet-20241022-v2:0"},
		{claudeOnBedrock, "claude-2.1", "us-east-1", "anthropic.claude-v2:1"},
		// Bedrock's own names, profiles and ARNs are sent as named.
		{claudeOnBedrock, "anthropic.claude-3-haiku-20240307-v1:0", "us-east-1", "anthropic.claude-3-haiku-20240307-v1:0"},
		{claudeOnBedrock, "eu.anthropic.claude-haiku-4-5-20251001-v1:0", "us-east-1", "eu.anthropic.claude-haiku-4-5-20251001-v1:0"},
		{claudeOnBedrock, "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc", "us-east-1", "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc"},
		{mistralOnBedrock, "mistral-large-latest", "us-west-2", "mistral.mistral-large-2407-v1:0"},
		{mistralOnBedrock, "mistral-large-2402", "us-west-2", "mistral.mistral-large-2402-v1:0"},
		{mistralOnBedrock, "pixtral-large-latest", "eu-west-1", "eu.mistral.pixtral-large-2502-v1:0"},
		{mistralOnBedrock, "mistral.mistral-small-2402-v1:0", "us-east-1", "mistral.mistral-small-2402-v1:0"},
	} {
		if got := bedrockModelID(tc.table, tc.model, tc.region); got != tc.want {
			t.Errorf("%s in %s: %q, want %q", tc.model, tc.region, got, tc.want)
		}
	}
}

func TestParseAWSCredential(t *testing.T) {
	c, err := parseAWSCredential(" AKID:se/cr+et:us-gov-west-1 ")
	if err != nil || c.AccessKeyID != "AKID" || c.SecretAccessKey != "se/cr+et" || c.Region != "us-gov-west-1" {
		t.Errorf("parsed %+v, %v", c, err)
	}
	for _, bad := range []string{"", "AKID:secret", "AKID::us-east-1", "AKID:secret:", "AKID:secret:us-east-1:extra",
		"AKID:secret:evil.example/x", "AKID:secret:us-east-1.attacker.example", "AKID:secret:US-EAST-1"} {
		if _, err := parseAWSCredential(bad); err == nil {
			t.Errorf("%q accepted", bad)
		} else if !strings.Contains(err.Error(), "AWS_CREDENTIALS") {
			t.Errorf("%q: error does not name the variable: %v", bad, err)
		}
	}
}

func TestBedrockPathID(t *testing.T) {
	for in, want := range map[string]string{
		"anthropic.claude-v2:1":   "anthropic.claude-v2%3A1",
		"../../foundation-models": "..%2F..%2Ffoundation-models",
		"..":                      "%2E%2E",
		".":                       "%2E",
		"a b?c#d":                 "a%20b%3Fc%23d",
	} {
		if got := bedrockPathID(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

func TestBedrockOutbound(t *testing.T) {
	call := func(c *Call, h http.Header) (*http.Request, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://upstream.invalid/v1/messages", nil)
		for k, v := range h {
			req.Header[k] = v
		}
		body, err := awsClaude.Outbound(context.Background(), req, c)
		if err != nil {
			t.Fatal(err)
		}
		return req, body
	}
	h := http.Header{"Anthropic-Version": {"2023-06-01"}, "Anthropic-Beta": {"a-1, b-2", "c-3"}, "User-Agent": {"sdk"}, "Accept": {"text/html"}}
	req, body := call(&Call{Upstream: Upstream{Base: bedrockEnv.DefaultBaseURL}, Cred: "AKID:secret:eu-west-1", Path: "/v1/messages", Model: "claude-3-5-sonnet-20241022", Stream: true,
		Body: []byte(`{"model":"x","stream":true,"max_tokens":5,"metadata":{},"system":"s","messages":[],"anthropic_version":"2023-06-01"}`)}, h)
	if got := req.URL.String(); got != "https://bedrock-runtime.eu-west-1.amazonaws.com/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/invoke-with-response-stream" {
		t.Errorf("URL %s", got)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if len(m) != 5 || m["anthropic_version"] != "bedrock-2023-05-31" || m["system"] != "s" || m["max_tokens"] != float64(5) {
		t.Errorf("body %s", body)
	}
	if betas, _ := json.Marshal(m["anthropic_beta"]); string(betas) != `["a-1","b-2","c-3"]` {
		t.Errorf("anthropic_beta %s", betas)
	}
	if req.Header.Get("Accept") != ContentEventStream || req.Header.Get("X-Amzn-Bedrock-Accept") != ContentJSON ||
		req.Header.Get("Anthropic-Version") != "" || req.Header.Get("Anthropic-Beta") != "" || req.Header.Get("User-Agent") != "" {
		t.Errorf("headers %v", req.Header)
	}
	auth := req.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKID/") || !strings.Contains(auth, "/eu-west-1/bedrock/aws4_request") || req.ContentLength != int64(len(body)) {
		t.Errorf("Authorization %q, length %d", auth, req.ContentLength)
	}
	if strings.Contains(auth, "secret") {
		t.Error("the secret is in the Authorization header")
	}

	// A key check lists the models on the control plane's host.
	req, body = call(&Call{Upstream: Upstream{Base: bedrockEnv.DefaultBaseURL}, Cred: "AKID:secret:us-east-2", Path: bedrockCheckPath, Check: true}, nil)
	if got := req.URL.String(); got != "https://bedrock.us-east-2.amazonaws.com/foundation-models" || body != nil {
		t.Errorf("check URL %s, body %q", got, body)
	}

	base := Upstream{Base: bedrockEnv.DefaultBaseURL}
	for want, bad := range map[string]*Call{
		"accessKeyId:secretAccessKey:region": {Upstream: base, Cred: "AKID:secret", Path: "/v1/messages", Model: "claude-2.1", Body: []byte(`{}`)},
		"not valid JSON":                     {Upstream: base, Cred: "AKID:secret:us-east-1", Path: "/v1/messages", Model: "claude-2.1", Body: []byte(`{"messages":`)},
		// Only the native route becomes InvokeModel.
		"is not served on Bedrock":         {Upstream: base, Cred: "AKID:secret:us-east-1", Path: "/v1/complete", Model: "claude-2.1", Body: []byte(`{}`)},
		"serves Anthropic (Claude) models": {Upstream: base, Cred: "AKID:secret:us-east-1", Path: "/v1/messages", Model: "meta.llama3-8b-instruct-v1:0", Body: []byte(`{}`)},
	} {
		req, _ := http.NewRequest(http.MethodPost, "http://upstream.invalid/v1/messages", nil)
		if _, err := awsClaude.Outbound(context.Background(), req, bad); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: %v, want %q", bad, err, want)
		}
	}
}

func TestBedrockKeyDead(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		dead   bool
	}{
		{403, `{"message":"The security token included in the request is invalid."}`, true},
		{403, `{"message":"The security token included in the request is expired"}`, true},
		{403, `{"message":"The request signature we calculated does not match the signature you provided."}`, true},
		{403, `{"message":"You don't have access to the model with the specified model ID."}`, false},
		{403, `{"__type":"com.amazon.coral.service#UnrecognizedClientException","message":"The security token included in the request is invalid."}`, true},
		{403, `{"message":"User: arn:aws:iam::1:user/u is not authorized to perform: bedrock:InvokeModel on resource: arn:aws:bedrock:us-east-1::foundation-model/x.UnrecognizedClientException"}`, false},
		{400, `{"message":"The provided model identifier is invalid."}`, false},
		{429, `{"message":"Too many requests, please wait before trying again."}`, false},
		{500, `{"message":"The security token included in the request is invalid."}`, false},
	} {
		if got := bedrockKeyDead(tc.status, []byte(tc.body)); got != tc.dead {
			t.Errorf("%d %s: dead %v, want %v", tc.status, tc.body, got, tc.dead)
		}
	}
}

func TestBedrockInvocationMetrics(t *testing.T) {
	st := &StreamState{}
	for _, ev := range []string{
		`{"type":"message_start","message":{"usage":{"input_tokens":5,"output_tokens":1}}}`,
		`{"type":"message_delta","delta":{},"usage":{"output_tokens":3}}`,
		`{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":100,"outputTokenCount":50,"cacheReadInputTokenCount":10,"cacheWriteInputTokenCount":2,"invocationLatency":1}}`,
	} {
		if !bedrockMessagesEvent(st, nil, []byte(ev)) {
			t.Errorf("%s not relayed", ev)
		}
	}
	if !st.Done || st.U != (Usage{Input: 112, Output: 50}) || st.Tokens(0) != 162 {
		t.Errorf("state %+v", st)
	}
	if _, ok := invocationMetrics([]byte(`{"amazon-bedrock-invocationMetrics":{"inputTokenCount":"many"}}`)); ok {
		t.Error("a count that is not a number was read")
	}
	if u, _ := invocationMetrics([]byte(`{"amazon-bedrock-invocationMetrics":{"inputTokenCount":-5,"outputTokenCount":1099511627777000}}`)); u.Input != 0 || u.Output != maxReported {
		t.Errorf("absurd counts read as %+v", u)
	}
}

// frames encodes event-stream messages as Bedrock sends them.
func frames(t testing.TB, msgs ...eventstream.Message) []byte {
	var b bytes.Buffer
	for _, m := range msgs {
		if err := eventstream.NewEncoder().Encode(&b, m); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func chunkFrame(event string) eventstream.Message {
	var h eventstream.Headers
	h.Set(":event-type", eventstream.StringValue("chunk"))
	h.Set(":content-type", eventstream.StringValue("application/json"))
	h.Set(":message-type", eventstream.StringValue("event"))
	payload, _ := json.Marshal(map[string]string{"bytes": base64.StdEncoding.EncodeToString([]byte(event)), "p": "abc"})
	return eventstream.Message{Headers: h, Payload: payload}
}

func exceptionFrame(typ, msg string) eventstream.Message {
	var h eventstream.Headers
	h.Set(":exception-type", eventstream.StringValue(typ))
	h.Set(":content-type", eventstream.StringValue("application/json"))
	h.Set(":message-type", eventstream.StringValue("exception"))
	payload, _ := json.Marshal(map[string]string{"message": msg})
	return eventstream.Message{Headers: h, Payload: payload}
}

// relay runs Inbound on a 200 event-stream answer and reads it whole.
func relay(t *testing.T, p *Provider, body []byte) (string, error) {
	t.Helper()
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {ContentEventStream}, "Content-Length": {"99"}},
		ContentLength: int64(len(body)), Body: io.NopCloser(bytes.NewReader(body))}
	if err := p.Inbound(resp, &Call{Model: "client-model", Stream: true}); err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("Content-Type") != ContentSSE || resp.Header.Get("Content-Length") != "" || resp.ContentLength != -1 {
		t.Errorf("headers %v, length %d", resp.Header, resp.ContentLength)
	}
	out, err := io.ReadAll(iotest1(resp.Body))
	return string(out), err
}

// iotest1 reads one byte at a time, as a slow client would.
func iotest1(r io.Reader) io.Reader { return &oneByte{r} }

type oneByte struct{ r io.Reader }

func (o *oneByte) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

func TestBedrockEventStream(t *testing.T) {
	var other eventstream.Headers
	other.Set(":event-type", eventstream.StringValue("initial-response"))
	other.Set(":message-type", eventstream.StringValue("event"))
	stop := `{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":3,"outputTokenCount":2}}`
	body := frames(t,
		chunkFrame(`{"type":"message_start","message":{"usage":{"input_tokens":3}}}`),
		eventstream.Message{Headers: other, Payload: []byte(`{}`)},
		chunkFrame("{\"type\":\"content_block_delta\",\n\"delta\":{\"text\":\"hi\"}}"),
		chunkFrame(stop))
	out, err := relay(t, awsClaude, body)
	want := "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3}}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"hi\"}}\n\n" +
		"event: message_stop\ndata: " + stop + "\n\n"
	if err != nil || out != want {
		t.Errorf("relayed %q, %v\nwant %q", out, err, want)
	}

	// An exception midway ends the stream with Anthropic's error event.
	out, err = relay(t, awsClaude, frames(t, chunkFrame(`{"type":"message_start"}`), exceptionFrame("throttlingException", "Too many tokens"), chunkFrame(stop)))
	if err != nil || !strings.HasSuffix(out, "event: error\ndata: {\"error\":{\"message\":\"throttlingException: Too many tokens\",\"type\":\"rate_limit_error\"},\"type\":\"error\"}\n\n") ||
		strings.Contains(out, "message_stop") {
		t.Errorf("exception relayed as %q, %v", out, err)
	}

	// A damaged frame breaks the stream: an error, not a clean end.
	broken := frames(t, chunkFrame(`{"type":"message_start"}`), chunkFrame(stop))
	broken[len(broken)-5] ^= 0xff
	out, err = relay(t, awsClaude, broken)
	if err == nil || err == io.EOF || !strings.Contains(out, "message_start") || strings.Contains(out, "message_stop") {
		t.Errorf("damaged frame: %q, %v", out, err)
	}
	// So does a chunk without its bytes.
	var h eventstream.Headers
	h.Set(":event-type", eventstream.StringValue("chunk"))
	h.Set(":message-type", eventstream.StringValue("event"))
	if _, err = relay(t, awsClaude, frames(t, eventstream.Message{Headers: h, Payload: []byte(`{"nope":1}`)})); err == nil || err == io.EOF {
		t.Errorf("chunk without bytes: %v", err)
	}
}

func TestBedrockMistralAnswers(t *testing.T) {
	out, err := relay(t, awsMistral, frames(t,
		chunkFrame(`{"choices":[{"index":0,"message":{"role":"assistant","content":"Hel"},"stop_reason":null}]}`),
		chunkFrame(`{"choices":[{"index":0,"message":{"role":"assistant","content":"lo"},"stop_reason":"stop"}],"amazon-bedrock-invocationMetrics":{"inputTokenCount":9,"outputTokenCount":4}}`)))
	if err != nil {
		t.Fatal(err)
	}
	events := strings.Split(strings.TrimSuffix(out, "\n\n"), "\n\n")
	if len(events) != 3 || events[2] != "data: [DONE]" {
		t.Fatalf("events %q", events)
	}
	st := &StreamState{}
	for _, ev := range events {
		MistralChat.Event(st, nil, []byte(strings.TrimPrefix(ev, "data: ")))
	}
	if !st.Done || st.U != (Usage{Input: 9, Output: 4}) || !strings.Contains(events[0], `"delta":{"role":"assistant","content":"Hel"}`) ||
		!strings.Contains(events[1], `"finish_reason":"stop"`) || !strings.Contains(events[0], `"model":"client-model"`) {
		t.Errorf("events %q, state %+v", events, st)
	}

	// An exception midway: Mistral's error chunk, then the end.
	out, err = relay(t, awsMistral, frames(t,
		chunkFrame(`{"choices":[{"index":0,"message":{"role":"assistant","content":"Hel"},"stop_reason":null}]}`),
		exceptionFrame("modelStreamErrorException", "The model failed")))
	if err != nil || !strings.Contains(out, `"finish_reason":"error"`) || !strings.Contains(out, "modelStreamErrorException: The model failed") || !strings.HasSuffix(out, "data: [DONE]\n\n") {
		t.Errorf("exception relayed as %q, %v", out, err)
	}

	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {ContentJSON},
		"X-Amzn-Bedrock-Input-Token-Count": {"12"}, "X-Amzn-Bedrock-Output-Token-Count": {"3"}},
		Body: io.NopCloser(strings.NewReader(`{"choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"stop_reason":"length"}]}`))}
	if err := awsMistral.Inbound(resp, &Call{Model: "mistral-small"}); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if u, ok := MistralChat.Usage(b); !ok || u != (Usage{Input: 12, Output: 3}) || resp.ContentLength != int64(len(b)) ||
		!strings.Contains(string(b), `"finish_reason":"length"`) || !strings.Contains(string(b), `"content":"Hi"`) {
		t.Errorf("whole answer %s (usage %+v)", b, u)
	}
}

func TestBedrockErrorShapes(t *testing.T) {
	for _, tc := range []struct {
		p    *Provider
		want string
	}{
		{awsClaude, `{"error":{"message":"ValidationException: Malformed input request","type":"invalid_request_error"},"type":"error"}`},
		{awsMistral, `{"error":{"code":"","message":"ValidationException: Malformed input request","param":null,"type":"invalid_request_error"}}`},
	} {
		resp := &http.Response{StatusCode: 400, Header: http.Header{"Content-Type": {ContentJSON},
			"X-Amzn-Errortype": {"ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"}},
			Body: io.NopCloser(strings.NewReader(`{"message":"Malformed input request"}`))}
		if err := tc.p.Inbound(resp, &Call{}); err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if string(b) != tc.want {
			t.Errorf("%s: %s\nwant %s", tc.p.ID, b, tc.want)
		}
	}
}

func TestBedrockCheckKey(t *testing.T) {
	fake := upstreamfake.Start(t, upstreamfake.Bedrock)
	up := Upstream{Base: fake.URL + "/{region}"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ok, err := awsClaude.CheckKey(ctx, http.DefaultTransport, up, "AKIDCHECK:"+upstreamfake.BedrockSecret("AKIDCHECK")+":us-east-1")
	if !ok || err != nil {
		t.Errorf("good credential: %v, %v", ok, err)
	}
	if last := fake.Last(t); last.Method != http.MethodGet || last.Path != "/us-east-1/foundation-models" {
		t.Errorf("check sent %s %s", last.Method, last.Path)
	}
	if ok, err := awsClaude.CheckKey(ctx, http.DefaultTransport, up, "AKIDCHECK:wrong:us-east-1"); ok || err != nil {
		t.Errorf("wrong secret: %v, %v; want dead", ok, err)
	}
	fake.Set(upstreamfake.Behavior{KeyStatus: map[string]int{"AKIDCHECK": 500}})
	if ok, err := awsClaude.CheckKey(ctx, http.DefaultTransport, up, "AKIDCHECK:"+upstreamfake.BedrockSecret("AKIDCHECK")+":us-east-1"); ok || err == nil {
		t.Errorf("outage: %v, %v; want unknown", ok, err)
	}
}

// FuzzBedrockEventStream: whatever bytes Bedrock sends, the relay never
// panics, and it only ends cleanly on whole frames.
func FuzzBedrockEventStream(f *testing.F) {
	f.Add(frames(f, chunkFrame(`{"type":"message_start"}`), chunkFrame(`{"type":"message_stop"}`)))
	f.Add(frames(f, exceptionFrame("modelStreamErrorException", "boom")))
	f.Add([]byte{0, 0, 0, 16, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, p := range []*Provider{awsClaude, awsMistral} {
			resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {ContentEventStream}}, Body: io.NopCloser(bytes.NewReader(b))}
			if err := p.Inbound(resp, &Call{}); err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
		}
	})
}

func TestBedrockServesVendor(t *testing.T) {
	for id, want := range map[string]bool{
		"anthropic.claude-3-haiku-20240307-v1:0":           true,
		"us.anthropic.claude-sonnet-4-5-20250929-v1:0":     true,
		"global.anthropic.claude-sonnet-4-5-20250929-v1:0": true,
		"apac.anthropic.claude-3-5-sonnet-20240620-v1:0":   true,
		"anthropic.":                         false,
		"":                                   false,
		"mistral.mistral-large-2407-v1:0":    false,
		"us.meta.llama3-3-70b-instruct-v1:0": false,
		"openai.gpt-oss-120b-1:0":            false,
		"us.us.anthropic.claude-3-haiku-20240307-v1:0":                                       false,
		"arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0": false,
		"claude-unknown-name": false,
	} {
		if got := servesVendor(id, "anthropic"); got != want {
			t.Errorf("%q: %v, want %v", id, got, want)
		}
	}
}

func TestMistralPrompt(t *testing.T) {
	body := func(messages string) *Call {
		return &Call{Body: []byte(`{"model":"mistral-tiny","max_tokens":9,"top_k":3,"messages":` + messages + `}`)}
	}
	got, err := mistralBedrockBody(body(`[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"},
		{"role":"assistant","content":"Hello."},{"role":"user","content":[{"type":"text","text":"Again"},{"type":"text","text":"!"}]}]`), nil, "mistral.mistral-7b-instruct-v0:2")
	want := `{"max_tokens":9,"prompt":"<s>[INST] Be brief.\n\nHi [/INST] Hello.</s>[INST] Again! [/INST]"}`
	if err != nil || string(got) != want {
		t.Errorf("body %s, %v\nwant %s", got, err, want)
	}
	// Chat models keep their messages.
	got, err = mistralBedrockBody(body(`[{"role":"user","content":"Hi"}]`), nil, "mistral.mistral-large-2407-v1:0")
	if err != nil || string(got) != `{"max_tokens":9,"messages":[{"role":"user","content":"Hi"}]}` {
		t.Errorf("chat body %s, %v", got, err)
	}
	for _, bad := range []string{`[]`, `"hi"`, `[{"role":"tool","content":"x"}]`, `[{"role":"user","content":[{"type":"image_url"}]}]`, `[{"role":"user","content":null}]`} {
		_, err := mistralBedrockBody(body(bad), nil, "mistral.mixtral-8x7b-instruct-v0:1")
		var ue *users.Error
		if !errors.As(err, &ue) || ue.Code != users.CodeInvalid {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

// Writing a prompt for Mistral's text-only models costs some copies of
// the body (10 for one long string), however many messages and parts it
// holds: the memory budget holds the body only. A 30 MiB body of empty
// parts took 440 MiB when each was collected as a gjson value and a
// string (30 to 35 times the body).
func TestMistralPromptAllocatesLinearly(t *testing.T) {
	const size = 512 << 10
	fill := func(item string) string {
		return strings.TrimSuffix(strings.Repeat(item+",", size/(len(item)+1)), ",")
	}
	for name, messages := range map[string]string{
		"one string":     `[{"role":"user","content":"` + strings.Repeat("a", size) + `"}]`,
		"small messages": `[` + fill(`{"role":"user","content":""}`) + `]`,
		"small parts":    `[{"role":"user","content":[` + fill(`{"type":"text"}`) + `]}]`,
		"turns":          `[` + fill(`{"role":"user","content":"a"},{"role":"assistant","content":"b"}`) + `]`,
	} {
		c := &Call{Body: []byte(`{"max_tokens":9,"messages":` + messages + `}`)}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.GC() // the pools emptied (encoding/json's buffers)
		runtime.ReadMemStats(&before)
		_, err := mistralBedrockBody(c, nil, "mistral.mistral-7b-instruct-v0:2")
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16*uint64(len(c.Body)) {
			t.Errorf("%s: allocated %d KiB, %.1f× the %d KiB body", name, alloc>>10, float64(alloc)/float64(len(c.Body)), len(c.Body)>>10)
		}
	}
}

func TestBedrockErrorsHideTheAccount(t *testing.T) {
	body := []byte(`{"message":"User: arn:aws:iam::123456789012:user/tollgate-prod is not authorized to perform: bedrock:InvokeModel on resource: arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-x because no identity-based policy allows it"}`)
	got := bedrockErrorMessage(http.Header{"X-Amzn-Errortype": {"AccessDeniedException:http://internal.amazon.com/"}}, body)
	want := "AccessDeniedException: User: arn:aws:iam::<account>:… is not authorized to perform: bedrock:InvokeModel on resource: arn:aws:bedrock:us-east-1:<account>:… because no identity-based policy allows it"
	if got != want {
		t.Errorf("message %q\nwant %q", got, want)
	}
	out, err := relay(t, awsClaude, frames(t, exceptionFrame("accessDeniedException", "arn:aws:sts::123456789012:assumed-role/r/s denied")))
	if err != nil || strings.Contains(out, "123456789012") || !strings.Contains(out, "permission_error") {
		t.Errorf("exception relayed as %q, %v", out, err)
	}
}

// BenchmarkBedrockEventStream relays a 200-chunk Claude stream: the cost
// the event-stream decoding adds to every streamed answer.
func BenchmarkBedrockEventStream(b *testing.B) {
	msgs := []eventstream.Message{chunkFrame(`{"type":"message_start","message":{"usage":{"input_tokens":3}}}`)}
	for range 200 {
		msgs = append(msgs, chunkFrame(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"some words of text "}}`))
	}
	msgs = append(msgs, chunkFrame(`{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":3,"outputTokenCount":800}}`))
	body := frames(b, msgs...)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {ContentEventStream}}, Body: io.NopCloser(bytes.NewReader(body))}
		if err := awsClaude.Inbound(resp, &Call{}); err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			b.Fatal(err)
		}
	}
}

// A repeated member is sent as the proxy read it: the last one, whose
// output limit the quota counted.
func TestBedrockRepeatedMembers(t *testing.T) {
	got, err := claudeBedrockBody(&Call{Body: []byte(`{"max_tokens":900,"messages":[],"max_tokens":10,"anthropic_version":"x"}`)}, http.Header{}, "")
	if want := `{"max_tokens":10,"messages":[],"anthropic_version":"bedrock-2023-05-31"}`; err != nil || string(got) != want {
		t.Errorf("body %s, %v; want %s", got, err, want)
	}
}

func TestBedrockCountTokensBody(t *testing.T) {
	req, _ := http.NewRequest(http.MethodPost, "http://upstream.invalid/v1/messages/count_tokens", nil)
	body, err := awsClaude.Outbound(context.Background(), req, &Call{Upstream: Upstream{Base: bedrockEnv.DefaultBaseURL},
		Cred: "AKID:secret:eu-west-1", Path: "/v1/messages/count_tokens", Model: "claude-sonnet-4-5",
		Body: []byte(`{"model":"claude-sonnet-4-5","system":"s","messages":[{"role":"user","content":"hi"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	// The foundation model, not the eu. profile.
	if got := req.URL.String(); got != "https://bedrock-runtime.eu-west-1.amazonaws.com/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/count-tokens" {
		t.Errorf("URL %s", got)
	}
	inner, err := base64.StdEncoding.DecodeString(gjson.GetBytes(body, "input.invokeModel.body").Str)
	if err != nil || string(inner) != `{"system":"s","messages":[{"role":"user","content":"hi"}],"anthropic_version":"bedrock-2023-05-31","max_tokens":1}` {
		t.Errorf("counted body %s (%v) in %s", inner, err, body)
	}

	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {ContentJSON}}, Body: io.NopCloser(strings.NewReader(`{"inputTokens":42}`))}
	if err := awsClaude.Inbound(resp, &Call{Path: "/v1/messages/count_tokens"}); err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != `{"input_tokens":42}` {
		t.Errorf("answer %s", b)
	}
}
