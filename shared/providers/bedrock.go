package providers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/tidwall/gjson"

	"tollgate.dev/tollgate/internal/jsonscan"
	"tollgate.dev/tollgate/shared/models"
	"tollgate.dev/tollgate/shared/users"
)

// AWS Bedrock serves Claude (/aws/claude, Anthropic Messages in) and
// Mistral (/aws/mistral, Mistral chat in) through InvokeModel and
// InvokeModelWithResponseStream. Both mounts share AWS_CREDENTIALS
// (key:secret:region per entry) and sign every attempt with SigV4; streams
// come back as binary event streams that Inbound turns into the SSE of
// the mount's API, chunk by chunk.
func awsClaudeProvider() *Provider {
	return bedrockClaude.mount(&Provider{
		ID:   models.AWSClaude,
		Name: "AWS Bedrock (Claude)",
		Routes: []Route{
			{Method: http.MethodPost, Pattern: "/v1/messages", Format: BedrockMessages},
			{Method: http.MethodPost, Pattern: "/v1/messages/count_tokens", Format: AnthropicCountTokens},
			{Method: http.MethodPost, Pattern: "/v1/chat/completions", Format: OpenAIChat, Translate: CloudAnthropicChat},
		},
		// The Anthropic SDKs send these: the beta list goes into the
		// body, where Bedrock reads it.
		Headers: []string{"Anthropic-Version", "Anthropic-Beta"},
		// Anthropic's Messages: max_tokens is required.
		ImageTokens: anthropicImageTokens,
	})
}

func awsMistralProvider() *Provider {
	return bedrockMistral.mount(&Provider{
		ID:   models.AWSMistral,
		Name: "AWS Bedrock (Mistral)",
		Routes: []Route{
			{Method: http.MethodPost, Pattern: "/v1/chat/completions", Format: MistralChat},
		},
		// Mistral's chat, max_tokens optional.
		UnlimitedOutput: mistralUnlimitedOutput,
		ImageTokens:     mistralImageTokens,
	})
}

// mount completes the provider of a Bedrock mount with what every mount
// shares (the credentials and their key check, the model list of its
// vendor after its own routes, InvokeModel out and the event stream in)
// and the error shape of the mount's API.
func (m *bedrockModel) mount(p *Provider) *Provider {
	p.Env = bedrockEnv
	p.Routes = append(p.Routes, Route{Method: http.MethodGet, Pattern: cloudModelsPath, Format: List, Translate: m.models()})
	p.Outbound, p.Inbound = m.outbound, m.inbound
	p.ErrorBody = m.errorBody
	p.KeyDead, p.CheckPath = bedrockKeyDead, bedrockCheckPath
	return p
}

var bedrockEnv = Env{Key: "AWS_CREDENTIALS", BaseURL: "AWS_BEDROCK_BASE_URL", MaxOutput: "MAX_OUTPUT_TOKENS_AWS",
	DefaultBaseURL: "https://bedrock-runtime.{region}.amazonaws.com"}

// BedrockMessages is Anthropic Messages as Bedrock streams it: the last
// event also carries amazon-bedrock-invocationMetrics, the counts Bedrock
// bills, which take precedence over the events' own usage.
var BedrockMessages = AnthropicMessages.variant(func(f *Format) {
	f.Name, f.Event = "bedrock-messages", bedrockMessagesEvent
})

func bedrockMessagesEvent(st *StreamState, name, data []byte) bool {
	relay := anthropicEvent(st, name, data)
	if u, ok := invocationMetrics(data); ok {
		st.U, st.HaveIn, st.HaveOut = u, true, true
	}
	return relay
}

const metricsMember = "amazon-bedrock-invocationMetrics"

// invocationMetrics reads the counts Bedrock adds to a stream's last
// chunk: cached prompt tokens are part of the prompt, as for Anthropic.
func invocationMetrics(data []byte) (Usage, bool) {
	if !bytes.Contains(data, []byte(metricsMember)) {
		return Usage{}, false
	}
	m := jsonscan.MemberValue(data, metricsMember)
	if m == nil {
		return Usage{}, false
	}
	var in, out, cacheRead, cacheWrite int64
	ok := decodeCounts(m, []count{
		{name: "inputTokenCount", to: &in},
		{name: "outputTokenCount", to: &out},
		{name: "cacheReadInputTokenCount", to: &cacheRead},
		{name: "cacheWriteInputTokenCount", to: &cacheWrite},
	})
	if !ok {
		return Usage{}, false
	}
	return Usage{Input: reported(in) + reported(cacheRead) + reported(cacheWrite), Output: reported(out)}, true
}

// bedrockKeyDead: Bedrock answers 403 for a credential it does not know,
// a secret that does not match (the signature fails) or an expired one.
// A 403 AccessDeniedException is about the model asked for (access not
// granted in that account or region) and is the request's.
// Only the exception's type or the start of its message counts: an
// AccessDeniedException names the resource asked for, which the request
// chose.
func bedrockKeyDead(status int, body []byte) bool {
	if status != http.StatusForbidden {
		return false
	}
	typ := gjson.GetBytes(body, "__type").String()
	typ = typ[strings.LastIndexByte(typ, '#')+1:]
	typ, _, _ = strings.Cut(typ, ":")
	if slices.Contains(bedrockKeyExceptions, typ) {
		return true
	}
	msg := gjson.GetBytes(body, "message").String()
	for _, p := range bedrockKeyMessages {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

var (
	bedrockKeyExceptions = []string{"UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException"}
	bedrockKeyMessages   = []string{
		"The security token included in the request is", // invalid, expired
		"The request signature we calculated does not match",
	}
)

// bedrockCheckPath is ListFoundationModels, free: a key check sends it to
// the control-plane host (bedrock.{region} rather than bedrock-runtime).
const bedrockCheckPath = "/foundation-models"

// awsCredential is one entry of AWS_CREDENTIALS: key:secret:region.
type awsCredential struct {
	aws.Credentials
	Region string
}

var awsRegion = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$`)

func parseAWSCredential(s string) (awsCredential, error) {
	parts := strings.Split(strings.TrimSpace(s), ":")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return awsCredential{}, errors.New("AWS_CREDENTIALS entries must be accessKeyId:secretAccessKey:region")
	}
	if !awsRegion.MatchString(parts[2]) {
		// Not quoted: in an entry written in another order, the secret is
		// in the region's place.
		return awsCredential{}, errors.New("AWS_CREDENTIALS: an entry's third part is not an AWS region (such as us-east-1); entries are accessKeyId:secretAccessKey:region")
	}
	return awsCredential{Credentials: aws.Credentials{AccessKeyID: parts[0], SecretAccessKey: parts[1], Source: "AWS_CREDENTIALS"}, Region: parts[2]}, nil
}

// bedrockModel is what one Bedrock mount needs to know of its models and
// bodies.
type bedrockModel struct {
	// path is the native route, under the mount, that becomes InvokeModel
	// (a translated route sends its requests there too); count, when set,
	// the route that becomes CountTokens.
	path, count string
	// vendor is the prefix of the Bedrock model IDs the mount serves
	// ("anthropic"): a mount's quota family never pays for another
	// vendor's model that happens to accept its body.
	vendor, vendorName string
	// provider is the vendor as ListFoundationModels names it (byProvider).
	provider string
	// ids maps the vendor's model names to Bedrock model IDs; a name that
	// already is a Bedrock ID (or an inference profile or ARN) is kept.
	ids func(model, region string) string
	// body is the request body as Bedrock takes it for the model id.
	body func(c *Call, h http.Header, id string) ([]byte, error)
	// event appends one decoded stream chunk to dst as SSE.
	event func(dst, payload []byte, c *Call) []byte
	// end is sent after the last chunk (nil: nothing).
	end []byte
	// exception renders an exception frame of a stream.
	exception func(typ, msg string) []byte
	// whole adapts a whole 2xx answer (nil: relayed as is).
	whole func(body []byte, h http.Header, c *Call) []byte
	// errorBody renders an error answer in the mount's shape.
	errorBody func(status int, e *users.Error) []byte
}

// outbound builds the InvokeModel request for the credential tried:
// host from the base URL template and the credential's region, path from
// the model's Bedrock ID, the body Bedrock accepts, a SigV4 signature.
func (m *bedrockModel) outbound(ctx context.Context, req *http.Request, c *Call) ([]byte, error) {
	cred, err := parseAWSCredential(c.Cred)
	if err != nil {
		return nil, err
	}
	base, err := url.Parse(strings.ReplaceAll(c.Base, "{region}", cred.Region))
	if err != nil || base.Host == "" {
		return nil, fmt.Errorf("AWS_BEDROCK_BASE_URL: %q does not make a URL", c.Base)
	}
	var body []byte
	var path string
	h := http.Header{}
	query := ""
	if c.Check || c.Path == cloudModelsPath {
		// The control plane's host is the runtime's without "-runtime".
		if rest, ok := strings.CutPrefix(base.Host, "bedrock-runtime."); ok {
			base.Host = "bedrock." + rest
		}
		path = bedrockCheckPath
		h.Set("Accept", ContentJSON)
		if !c.Check {
			// The model list: the mount's vendor's models only. SigV4
			// wants a space as %20.
			query = "byProvider=" + strings.ReplaceAll(url.QueryEscape(m.provider), "+", "%20")
		}
	} else {
		counting := m.count != "" && c.Path == m.count
		if c.Path != m.path && !counting {
			// Only the mount's native API becomes InvokeModel: a route
			// added under the mount must say how it maps.
			return nil, users.Errorf(users.CodeNotFound, "%s is not served on Bedrock; the native route is POST %s.", c.Path, m.path)
		}
		id := m.ids(c.Model, cred.Region)
		if !servesVendor(id, m.vendor) {
			return nil, users.Errorf(users.CodeInvalid, "This mount serves %s models on Bedrock only; %q is not one. Name one by its Bedrock model ID (%s…) or inference profile, or by the vendor's model name.", m.vendorName, c.Model, m.vendor)
		}
		if body, err = m.body(c, req.Header, id); err != nil {
			return nil, err
		}
		action := "invoke"
		switch {
		case counting:
			// CountTokens takes the InvokeModel body it would count, for
			// the foundation model (not a profile).
			action, id = "count-tokens", foundationID(id, m.vendor)
			body = countTokensBody(body)
			h.Set("Accept", ContentJSON)
		case c.Stream:
			action = "invoke-with-response-stream"
			h.Set("Accept", "application/vnd.amazon.eventstream")
			h.Set("X-Amzn-Bedrock-Accept", ContentJSON)
		default:
			h.Set("Accept", ContentJSON)
		}
		h.Set("Content-Type", ContentJSON)
		path = "/model/" + bedrockPathID(id) + "/" + action
	}
	basePath := strings.TrimRight(base.EscapedPath(), "/")
	u := &url.URL{Scheme: base.Scheme, Host: base.Host, RawPath: basePath + path, RawQuery: query}
	if u.Path, err = url.PathUnescape(u.RawPath); err != nil {
		return nil, fmt.Errorf("AWS_BEDROCK_BASE_URL: %w", err)
	}
	req.URL, req.Host = u, ""
	// Nothing the client sent is signed or sent but what Bedrock reads.
	req.Header = h
	req.ContentLength = int64(len(body))
	sum := sha256.Sum256(body)
	// A signer of its own: the SDK's caches derived keys by access key ID
	// alone, so a shared one would sign with a secret since replaced.
	if err := v4.NewSigner().SignHTTP(ctx, cred.Credentials, req, hex.EncodeToString(sum[:]), "bedrock", cred.Region, time.Now()); err != nil {
		return nil, fmt.Errorf("signing the Bedrock request: %w", err)
	}
	return body, nil
}

// servesVendor reports whether a Bedrock model ID (or cross-region
// inference profile: us.anthropic.…) is one of vendor's. ARNs are not
// served: they hide which model they name.
func servesVendor(id, vendor string) bool {
	if rest, ok := strings.CutPrefix(id, vendor+"."); ok {
		return rest != ""
	}
	geo, after, _ := strings.Cut(id, ".")
	rest, ok := strings.CutPrefix(after, vendor+".")
	return ok && rest != "" && geo != "" && len(geo) <= 6 && strings.Trim(geo, "abcdefghijklmnopqrstuvwxyz") == ""
}

// foundationID is the foundation model of a cross-region profile ID.
func foundationID(id, vendor string) string {
	if i := strings.Index(id, "."+vendor+"."); i >= 0 && !strings.HasPrefix(id, vendor+".") {
		return id[i+1:]
	}
	return id
}

// countTokensBody wraps an InvokeModel body for CountTokens; the
// Messages API requires max_tokens, which counting requests leave out.
func countTokensBody(invoke []byte) []byte {
	if !gjson.GetBytes(invoke, "max_tokens").Exists() {
		// invoke is keepMembers' output: an object, its last byte '}'.
		sep := ","
		if len(invoke) <= 2 {
			sep = ""
		}
		invoke = append(invoke[:len(invoke)-1:len(invoke)-1], sep+`"max_tokens":1}`...)
	}
	return MustJSON(map[string]any{"input": map[string]any{"invokeModel": map[string]any{"body": base64.StdEncoding.EncodeToString(invoke)}}})
}

// bedrockPathID escapes a model ID as the AWS SDKs do (the colon of
// "…-v1:0" too); a client's name can never step out of its segment.
func bedrockPathID(id string) string {
	esc := strings.ReplaceAll(url.PathEscape(id), ":", "%3A")
	if esc == "." || esc == ".." {
		esc = strings.ReplaceAll(esc, ".", "%2E")
	}
	return esc
}

// keepMembers copies the members of a JSON object named in keep (the
// last of a repeated name, as the proxy read it), then adds extra members
// (raw JSON values) not already there.
func keepMembers(body []byte, keep map[string]bool, extra ...[2]string) ([]byte, error) {
	if !gjson.ValidBytes(body) {
		return nil, errors.New("the request body is not valid JSON")
	}
	var order []string
	raw := map[string]string{}
	gjson.ParseBytes(body).ForEach(func(k, v gjson.Result) bool {
		if keep[k.Str] {
			if _, seen := raw[k.Str]; !seen {
				order = append(order, k.Str)
			}
			raw[k.Str] = v.Raw
		}
		return true
	})
	for _, kv := range extra {
		if _, seen := raw[kv[0]]; !seen && kv[1] != "" {
			order = append(order, kv[0])
			raw[kv[0]] = kv[1]
		}
	}
	out := make([]byte, 0, len(body)+64)
	out = append(out, '{')
	for i, k := range order {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, MustJSON(k)...)
		out = append(out, ':')
		out = append(out, raw[k]...)
	}
	return append(out, '}'), nil
}

// invocationUsageHeaders are where InvokeModel reports its counts.
const (
	headerInputTokens  = "X-Amzn-Bedrock-Input-Token-Count"
	headerOutputTokens = "X-Amzn-Bedrock-Output-Token-Count"
)

// bedrockErrorMessage is Bedrock's error as one line: its exception type
// (x-amzn-ErrorType, "ValidationException:http://…") and its message.
func bedrockErrorMessage(h http.Header, body []byte) string {
	msg := gjson.GetBytes(body, "message").String()
	if msg == "" {
		msg = gjson.GetBytes(body, "Message").String()
	}
	if msg == "" {
		msg = strings.TrimSpace(string(body))
	}
	msg = redactAccount(msg)
	if len(msg) > 1000 {
		msg = msg[:1000] + "…"
	}
	typ, _, _ := strings.Cut(h.Get("X-Amzn-Errortype"), ":")
	if typ == "" {
		typ = gjson.GetBytes(body, "__type").String()
	}
	if typ != "" && msg != "" {
		return typ + ": " + msg
	}
	if msg == "" {
		return "Bedrock answered without a message."
	}
	return msg
}

// awsARN matches an ARN's account and what follows it: Bedrock's
// AccessDeniedException names the caller (arn:aws:iam::123456789012:user/
// name) and the resources of the operator's account.
var awsARN = regexp.MustCompile(`(arn:aws[a-z-]*:[a-z0-9-]*:[a-z0-9-]*:)[0-9]{12}:[^\s"',]*`)

// redactAccount keeps the operator's AWS account and IAM names out of the
// errors relayed to clients.
func redactAccount(msg string) string {
	return awsARN.ReplaceAllString(msg, "${1}<account>:…")
}
