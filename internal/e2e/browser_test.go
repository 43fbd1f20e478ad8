package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/surge-vote/surge/internal/testenv"
)

// screenshotDir is git-ignored; a person can look at the pages there.
func screenshotDir(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(filepath.Dir(strings.TrimSpace(string(out))), ".surge", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func browser(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, p := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if found, err := exec.LookPath(p); err == nil {
			path = found
			break
		}
	}
	if path == "" {
		t.Fatal("chromium not found: `make deps` installs it (make test does)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	return ctx
}

// checkNode asserts that the page shows the serving host in its top-left corner.
func checkNode(t *testing.T, ctx context.Context, page string, want func(string) bool) {
	t.Helper()
	node, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#node")))
	if err != nil {
		t.Fatalf("%s: %v", page, err)
	}
	rect, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]float64](
		`(() => { const r = document.getElementById("node").getBoundingClientRect(); return {x: r.left, y: r.top, w: r.width}; })()`))
	if err != nil {
		t.Fatalf("%s: %v", page, err)
	}
	if !want(node) || rect["x"] > 40 || rect["y"] > 40 || rect["w"] == 0 {
		t.Fatalf("%s: node %q at %v, want the serving host in the top-left corner", page, node, rect)
	}
}

// extraHeaders sends headers with every request of the tab.
func extraHeaders(h network.Headers) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, t, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: h})
		return chromedp.Void{}, err
	}
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG; below is JPEG
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("%s is not a PNG", name)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// do runs actions and fails the test on error.
func do(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatal(err)
	}
}

// text returns the text of the first element matching a CSS selector.
func text(t *testing.T, ctx context.Context, css string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		t.Fatalf("text of %s: %v", css, err)
	}
	return s
}

func isWeb(n string) bool { return n == "web-1" || n == "web-2" }

// The whole journey in a real browser: vote by clicking, watch the results
// update without a reload while another client votes, add an item as admin,
// see it in the shop, buy it (confirmed), and buy more than is left
// (rejected); then fill a cart from the shop, change a quantity on the cart
// page and check out (confirmed whole), and check out a cart the stock
// cannot cover (rejected whole, nothing taken). Every page shows its host
// top-left; screenshots are saved.
func TestBrowserJourney(t *testing.T) {
	c := up(t, 2, 2)
	hostname, _ := os.Hostname()
	isResult := func(n string) bool { return n == hostname }
	dir := screenshotDir(t)
	ctx := browser(t)

	// 1. Vote by clicking.
	do(t, ctx, chromedp.Navigate(c.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#choice-cats")))
	checkNode(t, ctx, "vote page", isWeb)
	screenshot(t, ctx, dir, "vote.png")
	do(t, ctx, chromedp.Click(chromedp.CSS("#choice-cats")), chromedp.WaitVisible(chromedp.CSS("#confirmation")))
	confirmation := text(t, ctx, "#confirmation")
	if !strings.Contains(confirmation, "cats") || !strings.Contains(confirmation, "web-") {
		t.Fatalf("confirmation %q names neither the choice nor the node", confirmation)
	}
	checkNode(t, ctx, "vote confirmation", isWeb)
	screenshot(t, ctx, dir, "voted.png")
	// Changing the vote is obvious: the page marks the current choice.
	do(t, ctx, chromedp.Navigate(c.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#current")))
	current := text(t, ctx, "#current")
	if !strings.Contains(current, "cats") {
		t.Fatalf("vote page does not show the current vote: %q", current)
	}

	// 2. Results update without reload while another client votes.
	waitDrained(t, c)
	total := func() string { return text(t, ctx, `#poll-cats-vs-dogs .total`) }
	do(t, ctx,
		chromedp.Navigate(c.URL+"/results"),
		chromedp.WaitVisible(chromedp.CSS(`#live.on`)), // stream connected
		chromedp.Evaluate[chromedp.Void](`window.__noReload = 42; undefined`),
	)
	checkNode(t, ctx, "results page", isResult)
	if got := total(); got != "1" {
		t.Fatalf("results show total %s, want 1", got)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for _, choice := range []string{"dogs", "dogs", "cats", "dogs"} {
		if _, status := vote(t, client, c.URL, choice); status != http.StatusAccepted {
			t.Fatalf("vote: %d", status)
		}
	}
	// Four entries to drain, then a push.
	testenv.Eventually(t, drainBound(4)+resultsLag, func() error {
		if got := total(); got != "5" {
			return fmt.Errorf("results page shows total %s, want 5 without reload", got)
		}
		return nil
	})
	marker, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.__noReload || 0`))
	if err != nil {
		t.Fatal(err)
	}
	dogs := text(t, ctx, `#poll-cats-vs-dogs li[data-option="dogs"] .pct`)
	if marker != 42 {
		t.Fatal("the results page reloaded")
	}
	if dogs != "60.0%" {
		t.Fatalf("dogs shows %s, want 60.0%%", dogs)
	}
	widths, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("#poll-cats-vs-dogs .bar")].map(b => b.style.width)`))
	if err != nil || len(widths) != 2 || widths[0] != "40%" || widths[1] != "60%" {
		t.Fatalf("bar widths %v (%v), want [40%% 60%%]", widths, err)
	}
	// The bars' width transition (0.3 s in style.css; a loaded machine may
	// render it a few times slower) is over before the screenshot.
	testenv.Eventually(t, 5*time.Second, func() error {
		running, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.getAnimations().length`))
		if err == nil && running > 0 {
			err = fmt.Errorf("%d transitions still running", running)
		}
		return err
	})
	screenshot(t, ctx, dir, "results.png")

	// 3. The admin adds an item through the form (inline errors first).
	auth := base64.StdEncoding.EncodeToString([]byte(c.AdminUser + ":" + c.AdminPassword))
	do(t, ctx,
		extraHeaders(network.Headers{"Authorization": "Basic " + auth}),
		chromedp.Navigate(c.URL+"/admin"),
		chromedp.WaitVisible(chromedp.CSS("#name")),
		chromedp.SetValue(chromedp.CSS("#name"), "Browser mug"),
		chromedp.SetValue(chromedp.CSS("#quantity"), "-3"),
		chromedp.SetValue(chromedp.CSS("#price"), "7.5"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector("#name").form.noValidate = true; undefined`),
		chromedp.Submit(chromedp.CSS("#name")),
		chromedp.WaitVisible(chromedp.CSS("#quantity-error")),
	)
	nameError := text(t, ctx, "#quantity-error")
	if !strings.Contains(nameError, "from 0 to") {
		t.Fatalf("inline error %q", nameError)
	}
	checkNode(t, ctx, "admin page", func(n string) bool { return n == "admin-1" })
	screenshot(t, ctx, dir, "admin-error.png")
	do(t, ctx,
		chromedp.SetValue(chromedp.CSS("#quantity"), "3"),
		chromedp.Submit(chromedp.CSS("#name")),
		chromedp.WaitVisible(chromedp.Search(`//td[text()="Browser mug"]`)),
	)
	table := text(t, ctx, "table.items")
	if !strings.Contains(table, "Browser mug") || !strings.Contains(table, "7.50") {
		t.Fatalf("admin table: %q", table)
	}
	screenshot(t, ctx, dir, "admin.png")

	// 4. The item appears in the shop.
	do(t, ctx, chromedp.Navigate(c.URL+"/shop"), chromedp.WaitVisible(chromedp.CSS(`li.product`)))
	attr, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(`li.product[data-item]`), "data-item"))
	if err != nil || !attr.Exists {
		t.Fatalf("shop: %v", err)
	}
	itemID := attr.Value
	checkNode(t, ctx, "shop page", isWeb)
	screenshot(t, ctx, dir, "shop.png")

	// 5–6. Buy two: the order page follows it to confirmed.
	buy := func(qty string) string {
		sel := fmt.Sprintf(`#item-%s`, itemID)
		do(t, ctx,
			chromedp.Navigate(c.URL+"/shop"),
			chromedp.WaitVisible(chromedp.CSS(sel+` form.buy`)),
			chromedp.SetValue(chromedp.CSS(sel+` input[name="quantity"]`), qty),
			chromedp.Submit(chromedp.CSS(sel+` form.buy`)),
			chromedp.WaitVisible(chromedp.CSS(`#status`)),
			// Decided, and the page reloaded with it (order.js marks the
			// status it changes just before it reloads the page).
			chromedp.WaitVisible(chromedp.CSS(`#status:not(.status-pending):not([data-reloading])`)),
		)
		status := text(t, ctx, `#status`)
		checkNode(t, ctx, "order page", isResult)
		return status
	}
	if s := buy("2"); !strings.Contains(s, "Confirmed") {
		t.Fatalf("order status %q, want confirmed", s)
	}
	screenshot(t, ctx, dir, "order-confirmed.png")

	// 7. One is left: buying five is rejected.
	if s := buy("5"); !strings.Contains(s, "Rejected") || !strings.Contains(s, "sold out") {
		t.Fatalf("order status %q, want rejected (sold out)", s)
	}
	screenshot(t, ctx, dir, "order-rejected.png")

	// 8. Accounts: sign up from the shop's header (a short password is
	// refused inline first), log in, buy the last one while logged in,
	// find the order in "my orders", log out.
	noValidate := chromedp.Evaluate[chromedp.Void](`document.querySelector("form.form").noValidate = true; undefined`)
	do(t, ctx,
		chromedp.Navigate(c.URL+"/shop"),
		chromedp.WaitVisible(chromedp.CSS("#signup-link")),
		chromedp.Click(chromedp.CSS("#signup-link")),
		chromedp.WaitVisible(chromedp.CSS("#signup #name")),
		chromedp.SetValue(chromedp.CSS("#name"), "Browser buyer"),
		chromedp.SetValue(chromedp.CSS("#email"), "buyer@example.com"),
		chromedp.SetValue(chromedp.CSS("#password"), "short"),
		noValidate,
		chromedp.Submit(chromedp.CSS("#name")),
		chromedp.WaitVisible(chromedp.CSS("#password-error")),
	)
	checkNode(t, ctx, "sign-up page", isWeb)
	screenshot(t, ctx, dir, "signup-error.png")
	do(t, ctx,
		chromedp.SetValue(chromedp.CSS("#password"), "a long enough password"),
		chromedp.Submit(chromedp.CSS("#name")),
		chromedp.WaitVisible(chromedp.CSS("#login #email")),
		chromedp.SetValue(chromedp.CSS("#email"), "Buyer@Example.com"),
		chromedp.SetValue(chromedp.CSS("#password"), "a long enough password"),
		chromedp.Submit(chromedp.CSS("#email")),
		chromedp.WaitVisible(chromedp.CSS("#my-orders-link")), // back on the shop, logged in
	)
	if s := buy("1"); !strings.Contains(s, "Confirmed") {
		t.Fatalf("logged-in order status %q, want confirmed", s)
	}
	orderPath, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname`))
	if err != nil {
		t.Fatal(err)
	}
	orderID := strings.TrimPrefix(orderPath, "/orders/")
	do(t, ctx,
		chromedp.Navigate(c.URL+"/shop"),
		chromedp.WaitVisible(chromedp.CSS("#my-orders-link")),
		chromedp.Click(chromedp.CSS("#my-orders-link")),
		chromedp.WaitVisible(chromedp.CSS("#my-orders")),
	)
	row := text(t, ctx, "#my-orders tbody tr")
	if !strings.Contains(row, orderID) || !strings.Contains(row, "confirmed") {
		t.Fatalf("my orders' newest row %q, want order %s confirmed", row, orderID)
	}
	checkNode(t, ctx, "my orders page", isWeb)
	screenshot(t, ctx, dir, "my-orders.png")
	do(t, ctx,
		chromedp.Click(chromedp.CSS("#logout")),
		chromedp.WaitVisible(chromedp.CSS("#choice-cats")), // the vote page
		chromedp.Navigate(c.URL+"/my-orders"),
		chromedp.WaitVisible(chromedp.CSS("#login #email")), // logged out: the login page
	)

	// 9. The mug restocked by one; a cart: the last mug and three pens from the shop, the pens cut to
	// two on the cart page, checked out as one order: confirmed whole, with
	// its lines and total.
	if status, _ := adminPost(t, c, "/admin/api/items", map[string]any{"name": "Browser mug", "quantity": 1}); status != http.StatusOK {
		t.Fatalf("restock the mug: %d", status)
	}
	mugID, _ := strconv.ParseInt(itemID, 10, 64)
	waitQuantity(t, c.URL, mugID, 1)
	waitQuantity(t, c.URL, mugID, 1) // the other frontend
	status, pen := adminPost(t, c, "/admin/api/items", map[string]any{"name": "Browser pen", "quantity": 10, "price": "1.25", "topic": "stationery", "description": "Writes in blue ink."})
	if status != http.StatusCreated {
		t.Fatalf("add the pen: %d", status)
	}
	waitQuantity(t, c.URL, pen.ID, 10)
	waitQuantity(t, c.URL, pen.ID, 10) // the other frontend, next in the round robin
	mugSel, penSel := "#item-"+itemID, fmt.Sprintf("#item-%d", pen.ID)
	// The shop's search: words from the description, then the topic.
	for _, search := range []chromedp.Action[chromedp.Void]{
		chromedp.SetValue(chromedp.CSS(`#search-q`), "blue ink"),
		chromedp.SetValue(chromedp.CSS(`#search-topic`), "stationery"),
	} {
		do(t, ctx,
			chromedp.Navigate(c.URL+"/shop"),
			chromedp.WaitVisible(chromedp.CSS(`#search-go`)),
			search,
			chromedp.Click(chromedp.CSS(`#search-go`)),
			chromedp.WaitVisible(chromedp.CSS(`#search-clear`)),
		)
		shown, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("li.product h2")].map(e => e.textContent)`))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(shown, []string{"Browser pen"}) {
			t.Fatalf("the shop's search shows %q, want the pen only", shown)
		}
	}
	screenshot(t, ctx, dir, "shop-search.png")
	do(t, ctx,
		chromedp.Navigate(c.URL+"/shop"),
		chromedp.WaitVisible(chromedp.CSS(penSel+` button.add-to-cart`)),
		chromedp.SetValue(chromedp.CSS(penSel+` input[name="quantity"]`), "3"),
		chromedp.Click(chromedp.CSS(penSel+` button.add-to-cart`)),
		chromedp.Click(chromedp.CSS(mugSel+` button.add-to-cart`)),
	)
	if n, notice := text(t, ctx, "#cart-count"), text(t, ctx, "#cart-notice"); n != "2" || !strings.Contains(notice, "Browser mug") {
		t.Fatalf("after two adds the shop shows %s in the cart, notice %q", n, notice)
	}
	cartTotal := func(want string) {
		t.Helper()
		testenv.Eventually(t, 5*time.Second, func() error {
			if got := text(t, ctx, "#cart-total"); got != want {
				return fmt.Errorf("cart total %s, want %s", got, want)
			}
			return nil
		})
	}
	do(t, ctx, chromedp.Navigate(c.URL+"/cart"), chromedp.WaitVisible(chromedp.CSS(`#cart tr.line`)))
	checkNode(t, ctx, "cart page", isWeb)
	cartTotal("11.25") // 3 × 1.25 + 7.50
	do(t, ctx, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
		`(() => { const q = document.getElementById("cart-qty-%d"); q.value = "2"; q.dispatchEvent(new Event("change")); })()`, pen.ID)))
	cartTotal("10.00")
	screenshot(t, ctx, dir, "cart.png")
	checkout := func() (status, total string, atFault []string) {
		t.Helper()
		do(t, ctx,
			chromedp.Click(chromedp.CSS(`#checkout-button`)),
			chromedp.WaitVisible(chromedp.CSS(`#lines`)), // only once decided
		)
		checkNode(t, ctx, "order page", isResult)
		atFault, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#lines tr.at-fault")].map(r => r.dataset.item)`))
		if err != nil {
			t.Fatal(err)
		}
		return text(t, ctx, "#status"), text(t, ctx, "#total"), atFault
	}
	if s, total, atFault := checkout(); !strings.Contains(s, "Confirmed") || total != "10.00" || len(atFault) != 0 {
		t.Fatalf("cart order: %q, total %s, lines at fault %v; want confirmed, 10.00", s, total, atFault)
	}
	screenshot(t, ctx, dir, "cart-confirmed.png")
	waitQuantity(t, c.URL, pen.ID, 8)

	// 10. A cart the stock cannot cover whole (the mug is sold out now) is
	// rejected whole: the line at fault is named and no pen is taken.
	do(t, ctx,
		chromedp.Navigate(c.URL+"/cart"),
		chromedp.WaitVisible(chromedp.CSS(`#cart-empty`)), // emptied by the checkout
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`localStorage.setItem("surge.cart", JSON.stringify({"%d": 2, "%s": 1})); undefined`, pen.ID, itemID)),
		chromedp.Navigate(c.URL+"/cart"),
		chromedp.WaitVisible(chromedp.CSS(`#cart tr.line`)),
	)
	cartTotal("10.00")
	if s, _, atFault := checkout(); !strings.Contains(s, "Rejected") || !strings.Contains(s, "Nothing was taken") || len(atFault) != 1 || atFault[0] != itemID {
		t.Fatalf("cart order: %q, lines at fault %v; want rejected naming item %s", s, atFault, itemID)
	}
	screenshot(t, ctx, dir, "cart-rejected.png")
	waitQuantity(t, c.URL, pen.ID, 8)
	waitQuantity(t, c.URL, pen.ID, 8)
	t.Logf("screenshots in %s", dir)
}
