package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/tiogo/tio/example/im/imserver"
	"github.com/tiogo/tio/internal/browsertest"
	"github.com/tiogo/tio/tiotest"
)

// startIM starts the chat server at addr for the test, with a short
// heartbeat so that the pages' pings matter.
func startIM(t *testing.T, addr string, opts ...imserver.Option) *imserver.Server {
	t.Helper()
	opts = append([]imserver.Option{imserver.WithLogger(tiotest.Logger(t)), imserver.WithHeartbeat(3 * time.Second)}, opts...)
	srv := imserver.New(addr, opts...)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(srv) })
	return srv
}

func stop(srv *imserver.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
}

// page is one browser tab on the chat.
type page struct {
	t    *testing.T
	ctx  context.Context
	name string
}

func openPage(t *testing.T, browser context.Context, url, name string) *page {
	t.Helper()
	return openTab(t, browsertest.Tab(t, browser), url, name)
}

// openPrivatePage opens url in a tab of a new browser context, which
// shares no storage with the others (another person's browser).
func openPrivatePage(t *testing.T, browser context.Context, url, name string) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	return openTab(t, ctx, url, name)
}

func openTab(t *testing.T, ctx context.Context, url, name string) *page {
	t.Helper()
	p := &page{t: t, ctx: ctx, name: name}
	if err := chromedp.Do(p.ctx, chromedp.EmulateViewport(1100, 640), chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
	return p
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("%s: %s: %v", p.name, expr, err)
	}
	return v
}

// wait polls a JavaScript condition.
func (p *page) wait(what, cond string) {
	p.t.Helper()
	tiotest.EventuallyWithin(p.t, 15*time.Second, p.name+": "+what, func() bool {
		ok, err := chromedp.Run(p.ctx, chromedp.Evaluate[bool](cond))
		return err == nil && ok
	})
}

// texts returns the texts of the messages shown.
func (p *page) texts() []string {
	return eval[[]string](p, `[...document.querySelectorAll("#messages .msg .text")].map(e => e.textContent)`)
}

// waitText waits until a message with text is shown.
func (p *page) waitText(text string) {
	p.t.Helper()
	p.wait(fmt.Sprintf("message %q shown", text), fmt.Sprintf(
		`[...document.querySelectorAll("#messages .msg .text")].some(e => e.textContent === %s)`, js(text)))
}

// say types a message and clicks Send, as a user does. (Enter sends too,
// but chromedp's Enter also types a newline after the page has sent the
// message, which no browser does.)
func (p *page) say(text string) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, chromedp.SendKeys(chromedp.CSS("#say-text"), text), chromedp.Click(chromedp.CSS("#say-send"))); err != nil {
		p.t.Fatal(err)
	}
}

func (p *page) click(sel string) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		p.t.Fatalf("%s: click %s: %v", p.name, sel, err)
	}
}

// online waits until the page is logged in and in room.
func (p *page) online(room string) {
	p.t.Helper()
	p.wait("online in "+room, fmt.Sprintf(`chat.status === "online" && !!chat.convs.get(%s) && chat.convs.get(%s).joined`, js("#"+room), js("#"+room)))
}

func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// The chat in headless Chromium: two users chat in a room, a DM reaches
// both tabs of its recipient, hostile text is shown as text, the pages'
// pings keep them connected past the heartbeat timeout, they ride out a
// server restart on the same port and keep chatting, a terminal client
// chats with them, and a kick shows its reason. With TIO_SCREENSHOTS=1 it
// saves docs/im.png.
func TestChatInTheBrowser(t *testing.T) {
	browser := browsertest.New(t, 2*time.Minute)
	srv := startIM(t, "127.0.0.1:0", imserver.WithAdminToken("s3cret"))
	addr := srv.Addr().String()
	base := "http://" + addr + "/"

	opened := time.Now()
	alice := openPage(t, browser, base+"?user=alice", "alice")
	alice.online("lobby")
	bob := openPage(t, browser, base+"?user=bob", "bob")
	bob.online("lobby")
	bob2 := openPage(t, browser, base+"?user=bob", "bob's second tab")
	bob2.online("lobby")
	alice.wait("bob in the online list", `[...document.querySelectorAll("#online .name")].map(e => e.textContent).join() === "alice (you),bob"`)

	// A room: messages both ways, confirmed by the server.
	alice.say("hi bob! café at noon?")
	bob.waitText("hi bob! café at noon?")
	bob2.waitText("hi bob! café at noon?")
	alice.wait("alice's message confirmed", `document.querySelector("#messages .msg.own:not(.pending)") !== null`)
	bob.say("hey alice! how is the new server?")
	alice.waitText("hey alice! how is the new server?")

	// Hostile text is shown as text: no element, no script.
	const hostile = `<img src=x onerror="window.pwned=1"><b>bold?</b>`
	bob.say(hostile)
	alice.waitText(hostile)
	if n := eval[int](alice, `document.querySelectorAll("#messages img, #messages b").length + (window.pwned ? 100 : 0)`); n != 0 {
		t.Fatalf("the page made %d elements of a message's text", n)
	}

	// A DM from alice reaches both of bob's tabs.
	alice.click(`#online li.clickable`)
	alice.wait("the DM with bob open", `document.getElementById("chat-title").textContent === "@ bob"`)
	alice.say("psst, a secret")
	for _, p := range []*page{bob, bob2} {
		p.wait("a DM from alice listed", `[...document.querySelectorAll("#dms .conv")].some(e => e.textContent.startsWith("@ alice"))`)
		p.click(`#dms .conv`)
		p.waitText("psst, a secret")
	}
	bob2.say("got it")
	alice.waitText("got it")
	bob.waitText("got it") // the sender's other tab sees its DM too
	for _, p := range []*page{alice, bob, bob2} {
		p.click(`#rooms .conv`)
		p.wait("the lobby shown", `document.getElementById("chat-title").textContent === "# lobby"`)
	}

	// The pages' pings keep them connected well past the server's
	// heartbeat timeout (3 s): none has reconnected.
	if d := 8*time.Second - time.Since(opened); d > 0 {
		time.Sleep(d)
	}
	for _, p := range []*page{alice, bob, bob2} {
		if n := eval[int](p, `chat.connects`); n != 1 {
			t.Fatalf("%s connected %d times before the restart, want once", p.name, n)
		}
	}

	// The server stops and starts again on the same port: the pages show
	// the banner, reconnect, log in, rejoin the lobby and go on.
	stop(srv)
	for _, p := range []*page{alice, bob, bob2} {
		p.wait("the reconnecting banner", `chat.status === "reconnecting" && !document.getElementById("banner").hidden && document.getElementById("banner-text").textContent.includes("Reconnecting")`)
	}
	srv = startIM(t, addr, imserver.WithAdminToken("s3cret"))
	for _, p := range []*page{alice, bob, bob2} {
		p.online("lobby")
		p.wait("the banner gone", `document.getElementById("banner").hidden`)
	}
	tiotest.Eventually(t, "alice and bob back in the lobby", func() bool {
		return slices.Equal(srv.Online("lobby"), []string{"alice", "bob"})
	})
	alice.say("welcome back, everyone")
	bob.waitText("welcome back, everyone")
	bob.say("that was quick")
	alice.waitText("that was quick")
	if got := alice.texts(); !slices.Contains(got, "hi bob! café at noon?") {
		t.Fatalf("alice's page lost the messages from before the restart: %q", got)
	}

	// Another room: alice joins it from the sidebar; what bob says there
	// while she looks at the lobby shows as unread.
	if err := chromedp.Do(alice.ctx, chromedp.SendKeys(chromedp.CSS("#join-room"), "dev"+kb.Enter)); err != nil {
		t.Fatal(err)
	}
	alice.online("dev")
	alice.wait("dev shown", `document.getElementById("chat-title").textContent === "# dev"`)
	if err := chromedp.Do(bob.ctx, chromedp.SendKeys(chromedp.CSS("#join-room"), "dev"+kb.Enter)); err != nil {
		t.Fatal(err)
	}
	bob.online("dev")
	alice.click(`#rooms .conv`) // the lobby
	bob.wait("dev shown", `document.getElementById("chat-title").textContent === "# dev"`)
	bob.say("the deploy is done, metrics look fine")
	alice.wait("dev unread", `document.querySelector("#rooms .badge") && document.querySelector("#rooms .badge").textContent === "1"`)

	// A terminal client's message appears in the page, and the page's
	// answer on the terminal; the screenshot is taken meanwhile.
	termSays(t, srv, alice, func() {
		if os.Getenv("TIO_SCREENSHOTS") == "" {
			return
		}
		alice.wait("three online", `document.querySelectorAll("#online li").length === 3`)
		png, err := chromedp.Run(alice.ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join("..", "..", "docs", "im.png")
		if err := os.WriteFile(out, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", out, len(png))
	})

	// An admin's kick: both of bob's tabs show why, and stay disconnected.
	mod := openPrivatePage(t, browser, base, "mod")
	mod.wait("the login form", `!document.getElementById("login").hidden`)
	if err := chromedp.Do(mod.ctx,
		chromedp.SendKeys(chromedp.CSS("#login-user"), "mod"),
		chromedp.SendKeys(chromedp.CSS("#login-token"), "s3cret"+kb.Enter)); err != nil {
		t.Fatal(err)
	}
	mod.online("lobby")
	mod.wait("admin", `chat.admin === true && document.querySelectorAll("#online .kick").length === 2`)
	eval[bool](mod, `window.prompt = () => "flooding", true`)
	mod.click(`#online li:nth-child(2) .kick`) // alice, bob, mod (you): bob
	for _, p := range []*page{bob, bob2} {
		p.wait("the kick's reason", `chat.status === "stopped" && document.getElementById("banner-text").textContent === "Disconnected: kicked by an admin: flooding"`)
	}
	alice.wait("bob gone from the list", `[...document.querySelectorAll("#online .name")].every(e => e.textContent !== "bob")`)
}
