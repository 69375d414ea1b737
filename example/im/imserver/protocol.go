package imserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tiogo/tio/codec"
	"github.com/tiogo/tio/codec/websocket"
)

// The protocol is documented in docs/im-protocol.md: JSON objects, one per
// WebSocket text message (or binary-protocol packet of type
// websocket.TypeText). Commands carry "cmd", events carry "event".

// command holds every field a command may carry; each handler reads its
// own and checks that they are there. Unknown fields are ignored.
type command struct {
	Cmd    string `json:"cmd"`
	User   string `json:"user"`
	Token  string `json:"token"`
	Room   string `json:"room"`
	To     string `json:"to"`
	Text   string `json:"text"`
	Ref    string `json:"ref"`
	Reason string `json:"reason"`
}

// Error codes of the "error" event.
const (
	codeBadJSON       = "bad_json"          // the frame is not valid JSON
	codeBadRequest    = "bad_request"       // not an object, a field missing or of the wrong type, a packet type that is not JSON
	codeUnknownCmd    = "unknown_cmd"       // a "cmd" the server does not know
	codeBadName       = "bad_name"          // a user or room name outside the allowed characters or length
	codeBadText       = "bad_text"          // empty text, control characters
	codeTooLong       = "too_long"          // text over the limit
	codeNotLoggedIn   = "not_logged_in"     // a command other than login or ping before login
	codeLoggedIn      = "already_logged_in" // a second login under another name
	codeNotInRoom     = "not_in_room"       // say, typing or leave in a room the connection has not joined
	codeTooManyRooms  = "too_many_rooms"    // the user's room limit, or the server's
	codeRoomFull      = "room_full"         // the room's user limit
	codeTooManyConns  = "too_many_conns"    // the user's connection limit
	codeRateLimited   = "rate_limited"      // the user's message rate
	codeOffline       = "offline"           // a DM to a user with no connection
	codeForbidden     = "forbidden"         // an admin command from a non-admin
	codeBanned        = "banned"            // a login under a name kicked a moment ago
	codeBadAdminToken = "bad_admin_token"   // a login with a wrong admin token
)

// errorEvent is {"event":"error",…}.
type errorEvent struct {
	Event string `json:"event"`
	Code  string `json:"code"`
	Text  string `json:"text"`
	Cmd   string `json:"cmd,omitempty"`
	Ref   string `json:"ref,omitempty"`
}

// welcomeEvent answers a login.
type welcomeEvent struct {
	Event     string `json:"event"`
	User      string `json:"user"`
	Admin     bool   `json:"admin"`
	Heartbeat int64  `json:"heartbeat"` // ms: send a ping at least this often
	Limits    limits `json:"limits"`
}

// limits tells a client the bounds it must respect.
type limits struct {
	Text  int `json:"text"`  // bytes of a message's text
	Rooms int `json:"rooms"` // rooms per user
	Rate  int `json:"rate"`  // messages a second per user, sustained
	Burst int `json:"burst"` // messages in a burst
}

// messageEvent is a room message ("message") or a direct message ("dm").
type messageEvent struct {
	Event string `json:"event"`
	Room  string `json:"room,omitempty"`
	From  string `json:"from"`
	To    string `json:"to,omitempty"`
	Text  string `json:"text"`
	ID    uint64 `json:"id"`
	TS    int64  `json:"ts"`
}

// ackEvent confirms a say or dm to the connection that sent it.
type ackEvent struct {
	Event string `json:"event"`
	Ref   string `json:"ref,omitempty"`
	Room  string `json:"room,omitempty"`
	To    string `json:"to,omitempty"`
	ID    uint64 `json:"id"`
	TS    int64  `json:"ts"`
}

// memberEvent is "joined", "left" and "typing".
type memberEvent struct {
	Event string `json:"event"`
	Room  string `json:"room,omitempty"`
	User  string `json:"user"`
	To    string `json:"to,omitempty"` // typing in a DM
}

// onlineEvent lists a room's users.
type onlineEvent struct {
	Event string   `json:"event"`
	Room  string   `json:"room"`
	Users []string `json:"users"`
}

// roomsEvent lists the server's rooms.
type roomsEvent struct {
	Event string     `json:"event"`
	Rooms []roomInfo `json:"rooms"`
}

type roomInfo struct {
	Room  string `json:"room"`
	Users int    `json:"users"`
}

// kickedEvent tells an admin how many connections a kick closed.
type kickedEvent struct {
	Event string `json:"event"`
	User  string `json:"user"`
	Conns int    `json:"conns"`
}

// pongEvent answers a ping.
type pongEvent struct {
	Event string `json:"event"`
	Ref   string `json:"ref,omitempty"`
	TS    int64  `json:"ts"`
}

// encode marshals an event. HTML is not escaped: the page renders text with
// textContent, and escaping would make a hostile text six times longer.
func encode(v any) []byte {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		panic(fmt.Sprintf("imserver: encoding %T: %v", v, err)) // our own types: cannot fail
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// packet wraps an encoded event as a text message.
func packet(v any) *codec.Packet { return websocket.TextBytes(encode(v)) }

// historyPacket builds {"event":"history","room":R,"messages":[…]} from the
// stored encodings of the room's messages.
func historyPacket(room string, msgs []stored) *codec.Packet {
	n := 64 + len(room)
	for _, m := range msgs {
		n += len(m.b) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, `{"event":"history","room":`...)
	b = append(b, encode(room)...)
	b = append(b, `,"messages":[`...)
	for i, m := range msgs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, m.b...)
	}
	b = append(b, "]}"...)
	return websocket.TextBytes(b)
}

// decode reads a command, with a precise error for a field of the wrong
// type.
func decode(body []byte) (command, error) {
	var c command
	if err := json.Unmarshal(body, &c); err != nil {
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && te.Field != "" {
			return c, fmt.Errorf("field %q must be a %s", te.Field, te.Type.Kind())
		}
		if _, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			return c, errors.New("a command is a JSON object")
		}
		return c, errors.New("not valid JSON")
	}
	return c, nil
}

// checkName reports why s is not a valid user or room name: 1 to max bytes
// of ASCII letters, digits, '_', '-' and '.'. Names are ASCII so that no
// two look alike.
func checkName(what, s string, max int) error {
	if s == "" {
		return fmt.Errorf("%s is required", what)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return fmt.Errorf("%s may hold only ASCII letters, digits, '_', '-' and '.'", what)
		}
	}
	if len(s) > max {
		return fmt.Errorf("%s is at most %d characters", what, max)
	}
	return nil
}

// checkText reports why s cannot be sent: empty (after trimming spaces),
// over max bytes, or holding control characters other than newline and tab
// (C0, DEL, C1).
func checkText(s string, max int) (code string, err error) {
	if len(s) > max {
		return codeTooLong, fmt.Errorf("text is %d bytes, the limit is %d", len(s), max)
	}
	if strings.TrimSpace(s) == "" {
		return codeBadText, errors.New("text is empty")
	}
	if !utf8.ValidString(s) { // JSON decoding replaced bad bytes already; kept as a guard
		return codeBadText, errors.New("text is not UTF-8")
	}
	for _, r := range s {
		// C0, DEL and C1 (U+0080–U+009F, which some terminals read as
		// escape sequences): a text is for people, and for every client.
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return codeBadText, fmt.Errorf("text holds the control character %U", r)
		}
	}
	return "", nil
}

// clip shortens s to at most n bytes, on a character boundary, for echoing
// untrusted input in an error.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
