package proxy

import (
	"bytes"
	"encoding/base64"
	"html"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/models"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/web"
)

// policies applies the original's request policies once the request is
// authenticated and its body read: blocked origins, rejected phrases, tool
// use, images and context size. A refusal is answered here; it reports
// whether the request may go on.
func (x *exchange) policies() bool {
	pol := &x.h.cfg.Policies
	if blockedOrigin(pol, x.r) {
		x.blocked(pol)
		return false
	}
	if x.rq == nil || !x.ep.Format.Admitted {
		return true
	}
	// Only a charged route generates (a token count runs no tool). A
	// translated route's body is here the native one, as it will be sent.
	runs := x.ep.Format.Charged
	images, err := checkBody(pol, x.prov.ID, x.p.Exempt, x.rq.Body, x.ep.Format.Kind == models.Text, runs, x.rq.Stored, x.rq.PromptTokens, x.asked(false), x.prov.ImageTokens)
	if err != nil {
		x.writeError(err, x.rate())
		return false
	}
	// The images are part of the prompt the quota reserves, and of its
	// estimate wherever the upstream reports no input.
	x.rq.PromptTokens += images
	if runs && !pol.AllowPaid {
		if err := paidRequest(x.rq.Model, x.r.Header, x.prov.Headers); err != nil {
			x.writeError(err, x.rate())
			return false
		}
	}
	// An image tool makes images from a text route: as on the image
	// route, only where the image family is allowed.
	if x.rq.MakesImages && !x.p.Admin {
		if f := models.ImageFamilyOf(x.prov.ID, x.ep.Format.ImageToolModel); !x.h.cfg.FamilyAllowed(f) {
			x.writeError(users.Errorf(users.CodeForbidden, "The %s model family is not allowed on this proxy: the image_generation tool makes images with it.", f), x.rate())
			return false
		}
	}
	return true
}

// blockedOrigin reports an Origin or Referer naming a blocked site (a
// substring match, as the original's BLOCKED_ORIGINS).
func blockedOrigin(pol *config.Policies, r *http.Request) bool {
	if len(pol.BlockedOrigins) == 0 {
		return false
	}
	origin, referer := r.Header.Get("Origin"), r.Header.Get("Referer")
	for _, b := range pol.BlockedOrigins {
		if (origin != "" && strings.Contains(origin, b)) || (referer != "" && strings.Contains(referer, b)) {
			return true
		}
	}
	return false
}

// blocked refuses a blocked origin: API clients get the provider's error
// shape; a browser page (it accepts HTML and sent no JSON) is sent on to
// BLOCK_REDIRECT, as the original did.
func (x *exchange) blocked(pol *config.Policies) {
	accept := x.r.Header.Get("Accept")
	if !strings.Contains(accept, "text/html") || strings.Contains(x.r.Header.Get("Content-Type"), "application/json") {
		x.writeError(users.Errorf(users.CodeForbidden, "%s", pol.BlockMessage), nil)
		return
	}
	x.log.SetError(pol.BlockMessage)
	msg, dest := html.EscapeString(pol.BlockMessage), html.EscapeString(pol.BlockRedirect)
	page := `<!doctype html><html><head><title>Redirecting</title><meta http-equiv="refresh" content="3; url=` + dest +
		`"></head><body><h2>` + msg + `</h2><p><a href="` + dest + `">Continue</a></p></body></html>`
	h := x.w.Header()
	// It is a page of the proxy's origin, which the admin UI shares
	// under Hosting: nothing may run, load or frame it.
	web.PageHeaders(h, "default-src 'none'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(page)))
	h.Set(headerError, titles[users.CodeForbidden])
	h.Set(headerErrorStatus, strconv.Itoa(http.StatusForbidden))
	x.w.WriteHeader(http.StatusForbidden)
	_, _ = x.w.Write([]byte(page))
}

// checkBody applies the policies that read the body. Special users (and
// the admin key) are exempt from the image and context limits, as in the
// original; rejected phrases, tool use and paid features apply to
// everyone. runs: the body goes as it is to an upstream that generates
// (its paid features are looked for); stored: the request names context
// the upstream holds (Request.Stored). It returns what the body's image
// inputs add to the prompt's estimate, perImage tokens each (counted in
// the context size too), counted by a walk of the parsed body
// (countImages, the image check's rules) that a body the one look of
// markers finds no image word in is spared.
func checkBody(pol *config.Policies, prov models.Provider, exempt bool, body []byte, text, runs, stored bool, prompt, requested, perImage int64) (imageTokens int64, err error) {
	if !pol.RejectPhrases.Empty() {
		text, deep := promptText(body)
		if deep {
			return 0, tooDeep()
		}
		if pol.RejectPhrases.Match(text) {
			return 0, users.Errorf(users.CodeInvalid, "%s", pol.RejectMessage)
		}
	}
	checkTools := !pol.AllowTools && (prov == models.OpenAI || prov == models.AzureOpenAI)
	checkImages := !exempt && !pol.VisionServices[config.VisionService(prov)]
	checkPaid := runs && !pol.AllowPaid
	// Files on the operator's account are refused for everyone: the one
	// look markers takes finds the bodies that may name one.
	m := markers(body)
	// The walks share one parse: gjson copies a byte slice it parses.
	var doc gjson.Result
	parsed := false
	parse := func() gjson.Result {
		if !parsed {
			doc, parsed = gjson.Parse(string(body)), true
		}
		return doc
	}
	if checkTools && m.tools && usesTools(parse()) {
		return 0, users.Errorf(users.CodeInvalid, "Tool use (tools, functions) is not enabled on this proxy.")
	}
	if checkPaid && (m.tools || m.paid) {
		if err := paidBody(parse()); err != nil {
			return 0, err
		}
	}
	want := inputs(0)
	if m.stored {
		want |= storedFile | storedObject
	}
	if checkPaid && m.audio {
		want |= audioInput
	}
	if checkImages && m.image {
		want |= imageInput
	}
	if want != 0 {
		found, deep := findInputs(parse(), want)
		switch {
		case deep:
			return 0, tooDeep()
		case found&storedFile != 0:
			return 0, users.Errorf(users.CodeInvalid, "The request names a file stored on this proxy's account (a file_id, or a fileUri of uploaded files or of a bucket), which this proxy does not lend; send the file's content in the request instead.")
		case found&storedObject != 0:
			return 0, users.Errorf(users.CodeInvalid, "The request names an object stored on this proxy's account (a container, a vector store, a file search store, a search data store or RAG corpus, or the account's own identity), which this proxy does not lend; let the provider make a new container ({\"type\":\"auto\"}) and send files' content in the request instead.")
		case found&audioInput != 0:
			return 0, users.Errorf(users.CodeInvalid, "Audio input is billed at several times the price of text tokens, which this proxy's quotas count as text; it is not enabled on this proxy.")
		case found&imageInput != 0:
			return 0, users.Errorf(users.CodeForbidden, "Prompts containing images are not permitted. Disable 'Send Inline Images' in your client and try again.")
		}
	}
	if m.image && perImage > 0 {
		imageTokens = countImages(parse(), 0) * perImage
		prompt += imageTokens
		requested += imageTokens
	}
	if exempt {
		return imageTokens, nil
	}
	limit := pol.MaxContext[prov]
	if text && limit > 0 && stored {
		// The stored turns are unseen here: a chain of small requests
		// would grow the context past the limit.
		return 0, users.Errorf(users.CodeInvalid, "This proxy limits the context size (max: %d tokens) and cannot measure a stored response, conversation or item; send the whole conversation instead of previous_response_id, conversation or item_reference.", limit)
	}
	if text && limit > 0 && requested > limit {
		return 0, users.Errorf(users.CodeInvalid, "Your request exceeds the context size limit. (max: %d tokens, requested: %d prompt + %d output = %d context tokens)",
			limit, prompt, requested-prompt, requested)
	}
	return imageTokens, nil
}

// marks are what one pass over a body found for the checks that walk it:
// paid is a price option's member (paid tools are in tools), audio an
// audio input, stored a file reference.
type marks struct{ image, tools, paid, audio, stored bool }

// Words a member name or string value starts with in every image input
// (OpenAI's image_url and input_image parts, Anthropic's image blocks,
// Google's inline and file data), every tool declaration, every member
// paidBody reads besides tools, and every audio input.
var (
	imageWords = []string{"image", "input_image", "inline_data", "inlineData", "file_data", "fileData"}
	toolWords  = []string{"tools", "functions"}
	paidWords  = []string{"service_tier", "serviceTier", "speed", "inference_geo", "anthropic_beta", "web_search_options", "modalities", "audio",
		"responseModalities", "response_modalities", "data_sources", "mcp_servers"}
	audioWords = []string{"input_audio"}
	// storedWords: OpenAI's and Anthropic's file_id(s) and skill_id,
	// Gemini's file data; containers and stores of the account (OpenAI's
	// and Anthropic's container ids, OpenAI's vector stores, Gemini's file
	// search stores, Vertex AI Search and RAG Engine), and Azure's
	// data sources, which may sign in as the resource's managed identity.
	storedWords = []string{"file_id", "skill_id", "fileData", "file_data", "container", "vector_store", "file_search_store",
		"fileSearchStore", "vertexAiSearch", "vertex_ai_search", "vertexRagStore", "vertex_rag_store", "data_sources"}
	// wordsAt are the words by their first letter: most strings start
	// with none of them and are passed at once, the others are compared
	// with the few words of their letter only.
	wordsAt = func() (at [256][]markWord) {
		for i, words := range [][]string{imageWords, toolWords, paidWords, audioWords, storedWords} {
		next:
			for _, w := range words {
				// A word of two checks is compared once, setting both bits.
				for j := range at[w[0]] {
					if at[w[0]][j].word == w {
						at[w[0]][j].bit |= 1 << i
						continue next
					}
				}
				at[w[0]] = append(at[w[0]], markWord{w, 1 << i})
			}
		}
		return at
	}()
)

// markWord is a word and the bit it sets in markers: 1 image, 2 tools,
// 4 paid, 8 audio, 16 stored.
type markWord struct {
	word string
	bit  uint8
}

// markers looks at the body once for what usesTools, paidBody and
// findInputs look for: a string (member names are strings) starting with
// one of their words, or a \u escape, which could spell one. A body
// without them holds none, and is not walked: a prompt is mostly text,
// and the words inside it do not start a string.
func markers(body []byte) marks {
	for i := 0; ; {
		j := bytes.IndexByte(body[i:], '\\')
		if j < 0 {
			break
		}
		i += j + 1
		if i < len(body) && body[i] == 'u' {
			return marks{image: true, tools: true, paid: true, audio: true, stored: true}
		}
		i++ // the escaped character
		if i >= len(body) {
			break
		}
	}
	var set uint8
	for i := 0; set != 31; {
		j := bytes.IndexByte(body[i:], '"')
		if j < 0 {
			break
		}
		i += j + 1
		if i == len(body) {
			break
		}
		for _, w := range wordsAt[body[i]] {
			if rest := body[i:]; len(rest) >= len(w.word) && string(rest[:len(w.word)]) == w.word {
				set |= w.bit
			}
		}
	}
	return marks{image: set&1 != 0, tools: set&2 != 0, paid: set&4 != 0, audio: set&8 != 0, stored: set&16 != 0}
}

// usesTools reports a non-empty tools or functions member (OpenAI's chat
// and responses formats). Every member is read with its name unescaped:
// a repeated or \u-escaped name is what an upstream's parser may take.
func usesTools(doc gjson.Result) bool {
	found := false
	doc.ForEach(func(k, v gjson.Result) bool {
		switch k.String() {
		case "tools", "functions":
			found = v.Type != gjson.Null && !(v.IsArray() && len(v.Array()) == 0)
		}
		return !found
	})
	return found
}

// inputs are the kinds of input the walk over a body looks for: images
// (refused outside ALLOWED_VISION_SERVICES), audio (a paid feature), and
// files and other objects stored on the operator's account (refused).
type inputs uint8

const (
	imageInput inputs = 1 << iota
	audioInput
	storedFile
	storedObject
)

// stored are the kinds refused as the operator's.
const operatorStored = storedFile | storedObject

// findInputs reports an input of a wanted kind, in any of the formats
// served: images as OpenAI's image_url and input_image parts, Anthropic's
// image blocks, Google's inline and file data of an image type; audio as
// OpenAI's input_audio parts. One walk looks for both. deep reports a
// body nested past maxDepth, which the walk does not read whole.
func findInputs(doc gjson.Result, want inputs) (found inputs, deep bool) {
	found = walkInputs(doc, 0, want, &deep)
	if deep {
		found = 0
	}
	return found, deep
}

// maxDepth bounds the walks over hostile bodies; formats nest a few
// levels, but tool inputs and results nest as deep as their JSON does.
const maxDepth = 32

// tooDeep refuses a body the policy walks cannot read whole: what lies
// past maxDepth is read by the model all the same.
func tooDeep() error {
	return users.Errorf(users.CodeInvalid, "The request's JSON is nested more than %d levels deep, past what this proxy checks; flatten it and try again.", maxDepth)
}

// walkInputs reports the wanted inputs found in v, stopping at the
// first; past maxDepth it sets *deep and stops.
func walkInputs(v gjson.Result, depth int, want inputs, deep *bool) inputs {
	if depth > maxDepth {
		*deep = true
		return want
	}
	var found inputs
	switch {
	case v.IsObject():
		v.ForEach(func(k, val gjson.Result) bool {
			switch k.String() {
			case "type":
				switch val.String() {
				case "image_url", "image", "input_image":
					found = want & imageInput
				case "input_audio":
					found = want & audioInput
				case "container_reference":
					// OpenAI's shell environment in a container by id.
					found = want & storedObject
				}
			case "image_url":
				if val.Exists() && val.Type != gjson.Null {
					found = want & imageInput
				}
			case "input_audio":
				if val.Type != gjson.Null {
					found = want & audioInput
				}
			case "file_id":
				// OpenAI's input_file, input_image and file parts,
				// Anthropic's file sources and container uploads.
				if val.Type != gjson.Null {
					found = want & storedFile
				}
			case "skill_id":
				// A skill uploaded to the account (Anthropic's custom
				// skills, OpenAI's skill_reference); Anthropic's own
				// (type anthropic: xlsx, pdf, …) are no one's.
				if val.Type != gjson.Null && uploadedSkill(v) {
					found = want & storedFile
				}
			case "file_ids":
				// Files put in an automatic container (OpenAI's
				// code_interpreter).
				if nonEmpty(val) {
					found = want & storedFile
				}
			case "container":
				// A container by id (OpenAI's code_interpreter
				// "cntr_…", Anthropic's "container_…" or {"id": …}):
				// its files are whoever made it's. An automatic one
				// ({"type":"auto"}) is new, and walked for its files.
				if val.Type == gjson.String || member(val, "id", func(id gjson.Result) bool { return id.Type != gjson.Null }) {
					found = want & storedObject
				} else if val.IsObject() {
					found = walkInputs(val, depth+1, want, deep)
				}
			case "vector_store_ids", "file_search_store_names", "fileSearchStoreNames",
				"vertexAiSearch", "vertex_ai_search", "vertexRagStore", "vertex_rag_store":
				// OpenAI's file_search stores, Gemini's file search
				// stores, Vertex's search data stores and RAG corpora:
				// the account's own documents.
				if nonEmpty(val) {
					found = want & storedObject
				}
			case "data_sources":
				// Azure On Your Data signed in as the resource's managed
				// identity: whatever the operator's identity may read.
				if want&storedObject != 0 && managedIdentity(val) {
					found = storedObject
				} else {
					found = walkInputs(val, depth+1, want, deep)
				}
			case "inline_data", "inlineData", "file_data", "fileData":
				if imageData(val) {
					found = want & imageInput
				}
				if found == 0 && want&storedFile != 0 && operatorFile(val) {
					found = storedFile
				}
			default:
				w := want
				// Citations of a replayed answer name files without
				// sending them; JSON the model reads (a function's
				// schema, a tool's input) may name a file_id member.
				if name := k.String(); name == "annotations" || freeJSON[name] && val.IsObject() {
					w &^= operatorStored
				}
				if w != 0 {
					found = walkInputs(val, depth+1, w, deep)
				}
			}
			return found == 0
		})
	case v.IsArray():
		v.ForEach(func(_, val gjson.Result) bool {
			found = walkInputs(val, depth+1, want, deep)
			return found == 0
		})
	}
	return found
}

// nonEmpty reports a member that names something: not null, an empty
// array or an empty object.
func nonEmpty(v gjson.Result) bool {
	switch {
	case v.Type == gjson.Null || !v.Exists():
		return false
	case v.IsArray() || v.IsObject():
		empty := true
		v.ForEach(func(_, _ gjson.Result) bool { empty = false; return false })
		return !empty
	}
	return true
}

// managedIdentity reports an Azure data source (On Your Data) whose
// parameters' authentication is a managed identity of the resource.
func managedIdentity(sources gjson.Result) bool {
	hit := false
	sources.ForEach(func(_, src gjson.Result) bool {
		hit = member(src, "parameters", func(p gjson.Result) bool {
			return member(p, "authentication", func(a gjson.Result) bool {
				return member(a, "type", func(t gjson.Result) bool {
					return strings.Contains(strings.ToLower(t.String()), "managed_identity")
				})
			})
		})
		return !hit
	})
	return hit
}

// member reports a member of the object v named name (unescaped, any
// of its occurrences) for which is holds.
func member(v gjson.Result, name string, is func(gjson.Result) bool) bool {
	hit := false
	if v.IsObject() {
		v.ForEach(func(k, val gjson.Result) bool {
			hit = k.String() == name && is(val)
			return !hit
		})
	}
	return hit
}

// countImages counts the image inputs in v that findInputs finds one of:
// an object typed image_url, image or input_image, or holding an
// image_url (one image an object, however many of these it repeats), and
// Google inline or file data of an image or video type, or of none (a
// video counts as one image). Past maxDepth, where no format puts an
// image, it counts nothing.
func countImages(v gjson.Result, depth int) int64 {
	if depth > maxDepth {
		return 0
	}
	var n int64
	switch {
	case v.IsObject():
		image := false
		v.ForEach(func(k, val gjson.Result) bool {
			switch k.String() {
			case "type":
				switch val.String() {
				case "image_url", "image", "input_image":
					image = true
				}
			case "image_url":
				image = image || val.Type != gjson.Null
			case "inline_data", "inlineData", "file_data", "fileData":
				if imageData(val) {
					n++
				}
			default:
				n += countImages(val, depth+1)
			}
			return true
		})
		if image {
			n++
		}
	case v.IsArray():
		v.ForEach(func(_, val gjson.Result) bool {
			n += countImages(val, depth+1)
			return true
		})
	}
	return n
}

// notPrompt are members whose strings are no prompt text. "data" is
// read where it holds text (see textData).
var notPrompt = map[string]bool{"model": true, "role": true, "type": true, "url": true,
	"mime_type": true, "mimeType": true, "media_type": true, "image_url": true, "id": true, "tool_call_id": true}

// freeJSON are members whose object value the model reads as JSON, in
// whole: tool inputs and results (Anthropic's tool_use input, Gemini's
// functionCall args and functionResponse response) and schemas of tools
// and answers. Their member names are text, and a "type" or "id" in them
// is no format member.
var freeJSON = map[string]bool{"input": true, "args": true, "response": true, "parameters": true,
	"input_schema": true, "parametersJsonSchema": true, "parameters_json_schema": true, "schema": true,
	"responseSchema": true, "response_schema": true, "responseJsonSchema": true, "response_json_schema": true}

// promptText is every string of the body a prompt can hold, one a line:
// whatever the format, a phrase cannot hide in a member the walk skips.
// The text parts of one list (OpenAI's and Anthropic's content parts,
// Gemini's parts) follow, joined as the model reads them, on a line of
// their own: a phrase cannot hide split across two parts. deep reports a
// body nested past maxDepth, whose text is not all read.
func promptText(body []byte) (text string, deep bool) {
	var b strings.Builder
	var walk func(v gjson.Result, depth int, free bool, parts *joined)
	walk = func(v gjson.Result, depth int, free bool, parts *joined) {
		if depth > maxDepth {
			deep = true
			return
		}
		switch {
		case v.Type == gjson.String:
			b.WriteString(v.String())
			b.WriteByte('\n')
		case v.IsObject() && free:
			v.ForEach(func(k, val gjson.Result) bool {
				b.WriteString(k.String())
				b.WriteByte('\n')
				walk(val, depth+1, true, nil)
				return !deep
			})
		case v.IsObject():
			v.ForEach(func(k, val gjson.Result) bool {
				switch name := k.String(); {
				case freeJSON[name] && val.IsObject():
					walk(val, depth+1, true, nil)
				case name == "data" && val.Type == gjson.String:
					if textData(v) {
						b.WriteString(val.String())
						b.WriteByte('\n')
						// Google's inline text is base64 of what the model reads.
						if plain, err := base64.StdEncoding.DecodeString(val.String()); err == nil {
							b.Write(plain)
							b.WriteByte('\n')
						}
					}
				case !notPrompt[name]:
					if name == "text" && parts != nil && val.Type == gjson.String {
						parts.add(val.String())
					}
					walk(val, depth+1, false, nil)
				}
				return !deep
			})
		case v.IsArray():
			var parts joined
			v.ForEach(func(_, val gjson.Result) bool {
				walk(val, depth+1, free, &parts)
				return !deep
			})
			if parts.n > 1 {
				b.WriteString(parts.b.String())
				b.WriteByte('\n')
			}
		}
	}
	walk(gjson.ParseBytes(body), 0, false, nil)
	return b.String(), deep
}

// joined is the text members of one list's elements, one after another
// as the model reads them; n counts them.
type joined struct {
	b     strings.Builder
	first string
	n     int
}

func (j *joined) add(s string) {
	if j.n++; j.n == 1 {
		j.first = s // one part alone is on its own line already
		return
	}
	if j.n == 2 {
		j.b.WriteString(j.first)
	}
	j.b.WriteString(s)
}

// textData reports whether the object holding a "data" string gives it a
// text type (Anthropic's text document source, Google's inline text/*
// data): the model reads it. Other data (images, PDF, audio, or no type
// given) is binary, left out. Only objects with a data string pay for
// this second look at their members.
func textData(obj gjson.Result) bool {
	text := false
	obj.ForEach(func(k, val gjson.Result) bool {
		switch k.String() {
		case "media_type", "mime_type", "mimeType":
			text = text || strings.HasPrefix(strings.ToLower(val.String()), "text/")
		}
		return true
	})
	return text
}

// uploadedSkill reports a skill object that is not Anthropic's own: a
// type other than anthropic, or none, given in any of its type members.
func uploadedSkill(skill gjson.Result) bool {
	anthropic, other := false, false
	skill.ForEach(func(k, val gjson.Result) bool {
		if k.String() == "type" {
			if val.String() == "anthropic" {
				anthropic = true
			} else {
				other = true
			}
		}
		return !other
	})
	return other || !anthropic
}

// operatorFile reports Google file data whose fileUri is not on the web
// but on the operator's account: the Files API's uploads
// (files/…, generativelanguage.googleapis.com), a bucket (gs://, s3://,
// storage.googleapis.com), anything but http(s) off googleapis.com.
func operatorFile(v gjson.Result) bool {
	if !v.IsObject() {
		return false
	}
	hit := false
	v.ForEach(func(k, val gjson.Result) bool {
		switch k.String() {
		case "fileUri", "file_uri":
			hit = val.Type != gjson.Null && !webURI(val.String())
		}
		return !hit
	})
	return hit
}

// webURI reports an http(s) URL off Google's API hosts, which the
// upstream fetches as anyone may.
func webURI(s string) bool {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	return host != "" && host != "googleapis.com" && !strings.HasSuffix(host, ".googleapis.com")
}

// imageData reports Google inline or file data a model sees: an image, a
// video (its frames are images), or a file whose type is not given (the
// file's own type applies, which may be an image).
func imageData(v gjson.Result) bool {
	if !v.IsObject() {
		return false
	}
	typed, hit := false, false
	v.ForEach(func(k, val gjson.Result) bool {
		switch k.String() {
		case "mime_type", "mimeType":
			t := strings.ToLower(val.String())
			typed = typed || t != ""
			hit = strings.HasPrefix(t, "image/") || strings.HasPrefix(t, "video/")
		}
		return !hit
	})
	return hit || !typed
}
