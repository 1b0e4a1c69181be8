package providers

import "encoding/json"

// What the chat translations share in reading a conversation: OpenAI's
// messages become a system prompt and turns that alternate, as Anthropic's
// Messages and Gemini's contents both want them. Each API spells the
// blocks of a turn its own way (its dialect).

// turn is one turn of a native conversation: a role and its blocks
// (Anthropic's content blocks, Gemini's parts).
type turn struct {
	Role   string
	Blocks []any
}

// appendTurn adds blocks to turns as role's: to the last turn when it is
// role's too, so that turns alternate.
func appendTurn(turns []turn, role string, blocks ...any) []turn {
	if len(blocks) == 0 {
		return turns
	}
	if n := len(turns); n > 0 && turns[n-1].Role == role {
		turns[n-1].Blocks = append(turns[n-1].Blocks, blocks...)
		return turns
	}
	return append(turns, turn{Role: role, Blocks: blocks})
}

// dialect is how a native API spells the blocks of a conversation.
type dialect struct {
	// modelRole is the role of the model's turns.
	modelRole string
	text      func(text string) any
	// image is an image part (at names it in errors): its URL, and its
	// data unless remote (an http(s) URL).
	image      func(url string, img dataURL, remote bool, at string) (any, error)
	toolCall   func(id, name string, args json.RawMessage) any
	toolResult func(id, name, text string) any
}

// turns reads OpenAI messages: leading system and developer messages form
// the system prompt; later ones become user text; an assistant message
// is its text and tool calls; a tool result, which must answer a tool
// call of an earlier assistant message, is the user's; consecutive turns
// of one role merge.
func (d *dialect) turns(msgs []chatMessage) (system []any, turns []turn, err error) {
	calls := map[string]string{} // tool call id → function name
	for i, m := range msgs {
		at := "messages[" + itoa(i) + "]"
		switch m.Role {
		case "system", "developer":
			text, err := textOf(m.Content, at+".content")
			if err != nil {
				return nil, nil, err
			}
			if text == "" {
				continue
			}
			if len(turns) == 0 {
				system = append(system, d.text(text))
			} else {
				turns = appendTurn(turns, "user", d.text(text))
			}
		case "user":
			blocks, err := d.userBlocks(m.Content, at+".content")
			if err != nil {
				return nil, nil, err
			}
			turns = appendTurn(turns, "user", blocks...)
		case "assistant":
			blocks, err := d.assistantBlocks(m, at)
			if err != nil {
				return nil, nil, err
			}
			for _, tc := range m.ToolCalls {
				calls[tc.ID] = tc.Function.Name
			}
			turns = appendTurn(turns, d.modelRole, blocks...)
		case "tool":
			name, ok := calls[m.ToolCallID]
			if !ok {
				return nil, nil, invalid("%s.tool_call_id %q answers no tool call of an earlier assistant message.", at, m.ToolCallID)
			}
			text, err := textOf(m.Content, at+".content")
			if err != nil {
				return nil, nil, err
			}
			turns = appendTurn(turns, "user", d.toolResult(m.ToolCallID, name, text))
		default:
			return nil, nil, invalid("%s.role must be system, developer, user, assistant or tool.", at)
		}
	}
	if len(turns) == 0 {
		return nil, nil, invalid("messages must hold at least one user or assistant message.")
	}
	return system, turns, nil
}

func (d *dialect) userBlocks(raw json.RawMessage, at string) ([]any, error) {
	parts, err := contentParts(raw, at)
	if err != nil {
		return nil, err
	}
	blocks := make([]any, 0, len(parts))
	for j, p := range parts {
		pat := at + "[" + itoa(j) + "]"
		if p.Type == "text" {
			if p.Text != "" {
				blocks = append(blocks, d.text(p.Text))
			}
			continue
		}
		img, remote, err := readImage(p.ImageURL.URL, pat+".image_url.url")
		if err != nil {
			return nil, err
		}
		block, err := d.image(p.ImageURL.URL, img, remote, pat)
		if err != nil {
			return nil, err
		}
		blocks = append(blocks, block)
	}
	return blocks, nil
}

func (d *dialect) assistantBlocks(m chatMessage, at string) ([]any, error) {
	text, err := textOf(m.Content, at+".content")
	if err != nil {
		return nil, err
	}
	var blocks []any
	if text != "" {
		blocks = append(blocks, d.text(text))
	}
	for k, tc := range m.ToolCalls {
		tat := at + ".tool_calls[" + itoa(k) + "]"
		if tc.ID == "" || tc.Function.Name == "" {
			return nil, invalid("%s needs an id and a function name.", tat)
		}
		args, err := toolArguments(tc.Function.Arguments, tat+".function.arguments")
		if err != nil {
			return nil, err
		}
		blocks = append(blocks, d.toolCall(tc.ID, tc.Function.Name, args))
	}
	return blocks, nil
}
