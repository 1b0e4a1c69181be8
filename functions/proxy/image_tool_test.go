package proxy

import (
	"net/http"
	"strings"
	"testing"

	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/users"
)

// The images a Responses request's image_generation tool makes are
// billed by OpenAI at the image model's price, apart from the answer's
// own usage (the text model's): they are charged in the image family,
// the tokens tool_usage.image_gen reports, else each image at the output
// tokens OpenAI bills for one of the tool's size and quality (and 100 a
// partial image), whole answers and streams alike; the text stays in
// the text model's family.
func TestImageGenerationToolCharged(t *testing.T) {
	body := func(tool string, stream bool) string {
		s := `{"model":"gpt-4o","max_output_tokens":20,"input":"draw a fox","tools":[` + tool + `]`
		if stream {
			s += `,"stream":true`
		}
		return s + `}`
	}
	for _, c := range []struct {
		name   string
		tool   string
		stream bool
		b      upstreamfake.Behavior
		images int64
	}{
		{"reported", `{"type":"image_generation"}`, false, upstreamfake.Behavior{Images: 1, ImageToolUsage: [2]int64{172, 1372}}, 1544},
		{"reported, streamed", `{"type":"image_generation","partial_images":1}`, true, upstreamfake.Behavior{Images: 1, ImageToolUsage: [2]int64{172, 1472}}, 1644},
		{"not reported: per image", `{"type":"image_generation","size":"1024x1024","quality":"low"}`, false, upstreamfake.Behavior{Images: 2}, 2 * 272},
		{"not reported, streamed: per image and partial image", `{"type":"image_generation","size":"1536x1024","quality":"medium","partial_images":2}`, true,
			upstreamfake.Behavior{Images: 1}, 1568 + 2*100},
		{"not reported, auto: the most", `{"type":"image_generation","quality":"auto"}`, false, upstreamfake.Behavior{Images: 1}, 6240},
		{"no image made", `{"type":"image_generation"}`, false, upstreamfake.Behavior{Images: 0, ImageToolUsage: [2]int64{1, 1}}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, map[string]string{"ALLOW_OPENAI_TOOL_USAGE": "true", "ALLOWED_MODEL_FAMILIES": "gpt4o,gpt-image"})
			tk := e.user(users.Patch{})
			e.fake(upstreamfake.OpenAI).Set(c.b)
			a := e.do(call{path: "/proxy/openai/v1/responses", body: body(c.tool, c.stream), header: bearerH(tk)})
			if a.status != 200 {
				t.Fatalf("%d %s", a.status, a.body)
			}
			if c.b.Images > 0 && !strings.Contains(string(a.body), `"image_generation_call"`) {
				t.Fatalf("no image in the answer: %s", a.body)
			}
			u := e.get(tk)
			if got := u.TokenCounts["gpt4o"]; got != 18 {
				t.Errorf("text family charged %d, want the answer's usage 18 (%v)", got, u.TokenCounts)
			}
			if got := u.TokenCounts["gpt-image"]; got != c.images {
				t.Errorf("image family charged %d, want %d (%v)", got, c.images, u.TokenCounts)
			}
		})
	}
}

// The images are reserved in the image family's quota before the request
// is sent: one image at the tool's price (max_tool_calls images when the
// request bounds its tool calls).
func TestImageGenerationToolReserved(t *testing.T) {
	e := newEnv(t, map[string]string{"ALLOW_OPENAI_TOOL_USAGE": "true", "ALLOWED_MODEL_FAMILIES": "gpt4o,gpt-image"})
	tk := e.user(users.Patch{TokenLimits: setOpt(map[string]int64{"gpt-image": 1000})})
	e.fake(upstreamfake.OpenAI).Set(upstreamfake.Behavior{Images: 1})
	for _, b := range []string{
		`{"model":"gpt-4o","max_output_tokens":20,"input":"draw","tools":[{"type":"image_generation"}]}`,
		`{"model":"gpt-4o","max_output_tokens":20,"input":"draw","tools":[{"type":"image_generation","quality":"low","size":"1024x1024"}],"max_tool_calls":4}`,
		`{"model":"gpt-4o","max_output_tokens":20,"input":"draw","tools":[{"type":"image_generation","quality":"low","quality":"high","size":"1024x1024"}]}`,
	} {
		a := e.do(call{path: "/proxy/openai/v1/responses", body: b, header: bearerH(tk)})
		if a.status != http.StatusTooManyRequests || !strings.Contains(string(a.body), "gpt-image") {
			t.Errorf("%s: %d %s", b, a.status, a.body)
		}
	}
	if n := e.fake(upstreamfake.OpenAI).Count(); n != 0 {
		t.Fatalf("%d requests sent past the image quota", n)
	}
	a := e.do(call{path: "/proxy/openai/v1/responses", body: `{"model":"gpt-4o","max_output_tokens":20,"input":"draw","tools":[{"type":"image_generation","quality":"low","size":"1024x1024"}],"max_tool_calls":3}`, header: bearerH(tk)})
	if a.status != 200 {
		t.Fatalf("three low images fit: %d %s", a.status, a.body)
	}
	if got := e.get(tk).TokenCounts["gpt-image"]; got != 272 {
		t.Errorf("image family charged %d, want the one image made, 272", got)
	}
}

// An answer too big to hold is relayed unread: its images are charged
// at what was reserved for them.
func TestImageGenerationToolUnreadAnswerChargedTheReservation(t *testing.T) {
	e := newEnv(t, map[string]string{"ALLOW_OPENAI_TOOL_USAGE": "true", "ALLOWED_MODEL_FAMILIES": "gpt4o,gpt-image"}, Options{MaxAnswer: 64})
	tk := e.user(users.Patch{})
	e.fake(upstreamfake.OpenAI).Set(upstreamfake.Behavior{Images: 1, ImageToolUsage: [2]int64{172, 1372}})
	b := `{"model":"gpt-4o","max_output_tokens":20,"input":"draw","tools":[{"type":"image_generation","quality":"low","size":"1024x1024"}],"max_tool_calls":2}`
	a := e.do(call{path: "/proxy/openai/v1/responses", body: b, header: bearerH(tk)})
	if a.status != 200 || !strings.Contains(string(a.body), `"image_generation_call"`) {
		t.Fatalf("%d %.300s", a.status, a.body)
	}
	if got := e.get(tk).TokenCounts["gpt-image"]; got != 2*272 {
		t.Errorf("image family charged %d, want the two images reserved, 544", got)
	}
}
