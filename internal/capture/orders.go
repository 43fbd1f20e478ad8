package capture

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/oklog/ulid/v2"

	"github.com/surge-vote/surge/internal/httpx"
	"github.com/surge-vote/surge/internal/redis"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/ui"
)

type orderRequest struct {
	OrderID  string          `json:"order_id"`
	Item     json.RawMessage `json:"item"`
	Quantity json.RawMessage `json:"quantity"`
	// Lines (even an empty list) make the order a cart; then item and
	// quantity are absent. null is no lines.
	Lines []orderLineRequest `json:"lines"`
}

type orderLineRequest struct {
	Item     json.RawMessage `json:"item"`
	Quantity json.RawMessage `json:"quantity"`
}

// decodeOrder reads and validates an order: one item and its quantity, or
// lines (a cart). A form gives one item and quantity, or a cart as item and
// quantity repeated, one quantity per item in the same order.
func decodeOrder(r *http.Request, limit int64) (surge.Order, url.Values, error) {
	var req orderRequest
	form, err := httpx.DecodeBody(r, limit, &req)
	if err != nil {
		return surge.Order{}, nil, err
	}
	var items, quantities []json.Number
	switch {
	case form != nil:
		req.OrderID = form.Get("order_id")
		for _, v := range form["item"] {
			items = append(items, json.Number(v))
		}
		for _, v := range form["quantity"] {
			quantities = append(quantities, json.Number(v))
		}
		if len(items) > 1 && len(items) != len(quantities) {
			return surge.Order{}, nil, surge.Errorf(surge.EINVALID, "a cart form must give one quantity per item: %d items, %d quantities", len(items), len(quantities))
		}
	case req.Lines != nil:
		if httpx.NumberLiteral(req.Item) != "" || httpx.NumberLiteral(req.Quantity) != "" {
			return surge.Order{}, nil, surge.Errorf(surge.EINVALID, `give either "lines" or "item" and "quantity", not both`)
		}
		for _, l := range req.Lines {
			items, quantities = append(items, httpx.NumberLiteral(l.Item)), append(quantities, httpx.NumberLiteral(l.Quantity))
		}
	default:
		items, quantities = []json.Number{httpx.NumberLiteral(req.Item)}, []json.Number{httpx.NumberLiteral(req.Quantity)}
	}
	cart := req.Lines != nil || len(items) > 1
	if !cart { // the single-item form: its missing fields are named as such
		items, quantities = append(items, "")[:1], append(quantities, "")[:1]
	}
	if n := len(items); n < 1 || n > surge.MaxOrderLines {
		return surge.Order{}, nil, surge.Errorf(surge.EINVALID, "an order must have from 1 to %d lines, not %d", surge.MaxOrderLines, n)
	}
	lines := make([]surge.OrderLine, len(items))
	for i := range items {
		line := ""
		if cart {
			line = fmt.Sprintf("line %d: ", i+1)
		}
		itemID, err := strconv.ParseInt(string(items[i]), 10, 64)
		if err != nil || itemID <= 0 {
			return surge.Order{}, nil, surge.Errorf(surge.EINVALID, "%sitem must be a positive whole number (an item id)", line)
		}
		qty, err := strconv.Atoi(string(quantities[i]))
		if err != nil || qty < 1 || qty > surge.MaxOrderQuantity {
			return surge.Order{}, nil, surge.Errorf(surge.EINVALID, "%squantity must be a whole number from 1 to %d", line, surge.MaxOrderQuantity)
		}
		lines[i] = surge.OrderLine{Item: itemID, Quantity: qty}
	}
	o := surge.Order{ID: req.OrderID, Lines: lines}
	if o.ID == "" {
		if o.ID, err = newOrderID(time.Now()); err != nil {
			return surge.Order{}, nil, err
		}
	}
	if err := o.Validate(); err != nil {
		return surge.Order{}, nil, err
	}
	return o, form, nil
}

// orderIDEntropy is the random part of the order ids the server makes. It
// is crypto/rand: whoever knows an order id may follow the order, and
// ulid.Make's entropy (math/rand, seeded when the process started, which
// /metrics publishes) could be guessed.
var orderIDEntropy io.Reader = rand.Reader

// newOrderID returns a ULID: the time in milliseconds, then 80 bits from
// orderIDEntropy and nothing else.
func newOrderID(now time.Time) (string, error) {
	id, err := ulid.New(ulid.Timestamp(now), orderIDEntropy)
	if err != nil {
		return "", fmt.Errorf("new order id: %w", err)
	}
	return id.String(), nil
}

// postOrder queues an order like a vote: durable on every copy's shard
// before the 202. Its copies go to the shards its id hashes to
// (copies.Home), whichever frontend takes it, and each takes the order id
// in the same atomic step as its append, with the order's lines: a repeat
// anywhere queues nothing, and one with other lines is a 409. The worker
// applies only the first order by id (and never one with another payload),
// so the copies count once.
func (s *Server) postOrder(c *gin.Context) {
	o, form, err := decodeOrder(c.Request, s.cfg.MaxBody)
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	if !s.allow(c, s.buyers, s.clientAddr(c), "too many orders from this address; try again later") {
		return
	}
	for _, l := range o.Lines {
		if err := s.checkItem(c.Request.Context(), l.Item); err != nil {
			httpx.Error(c, s.log, err)
			return
		}
	}
	o.Node, o.At = s.cfg.Node, s.now().UTC()
	o.Account = s.signedAccount(c.Request) // the buyer, if logged in; 0: anonymous
	fields := surge.EncodeOrder(o)
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.cfg.AppendTimeout)
	defer cancel()
	_, err = s.queue.AppendOnce(ctx, redis.OrderKey(o.ID), o.Payload(), s.cfg.OrderKeyTTL, fields)
	state := surge.PendingState(o)
	switch {
	case errors.Is(err, redis.ErrDuplicate), errors.Is(err, redis.ErrConflict):
		// The id is taken on its shards. The order applied under it, if
		// any, decides whose it is; until then, what those shards hold.
		applied, ok := s.appliedOrder(ctx, o.ID)
		switch {
		case ok && surge.LinesPayload(applied.OrderLines()) != o.Payload(),
			!ok && errors.Is(err, redis.ErrConflict):
			httpx.Error(c, s.log, surge.Errorf(surge.ECONFLICT,
				"order_id %q is already taken by another order (other items or quantities)", o.ID))
			return
		case ok:
			state = applied
		}
	case err != nil:
		s.log.Warn("queue append failed", "err", err)
		httpx.Error(c, s.log, surge.Unavailable("queue", err))
		return
	default:
		s.orders.Inc()
	}
	if form != nil && httpx.WantsHTML(c.Request) {
		// The order page (served where every shard is visible) follows it.
		c.Redirect(http.StatusSeeOther, "/orders/"+url.PathEscape(o.ID))
		return
	}
	c.JSON(http.StatusAccepted, state)
}

// appliedOrder is the order a worker applied under id, if Postgres is
// configured and answers.
func (s *Server) appliedOrder(ctx context.Context, id string) (surge.OrderState, bool) {
	if s.applied == nil {
		return surge.OrderState{}, false
	}
	st, err := s.applied.OrderState(ctx, id)
	return st, err == nil
}

// checkItem refuses an order for an item the catalogue does not have, so
// orders for made-up items never reach the queue. Without a catalogue (no
// postgres.url) the worker alone judges, and rejects them.
func (s *Server) checkItem(ctx context.Context, id int64) error {
	if s.catalog == nil {
		return nil
	}
	ok, err := s.catalog.HasItem(ctx, id)
	switch {
	case err != nil && surge.ErrorCode(err) == surge.EINTERNAL:
		return surge.Unavailable("catalogue", err)
	case err != nil:
		return err
	case !ok:
		return surge.Errorf(surge.EINVALID, "unknown item %d", id)
	}
	return nil
}

// getShop renders the catalogue with a buy form per item. Each form carries
// a fresh order id, so a double submit is one order.
func (s *Server) getShop(c *gin.Context) {
	data := map[string]any{"Items": []surge.Item{}, "OrderIDs": map[int64]string{}}
	status := http.StatusOK
	// ?q=&topic= narrow the page to a search of the catalogue.
	search, searchErr := parseItemQuery(url.Values{"q": {c.Query("q")}, "topic": {c.Query("topic")}})
	data["Q"], data["Topic"] = c.Query("q"), c.Query("topic")
	if s.catalog == nil {
		data["Unavailable"] = true
		status = http.StatusServiceUnavailable
	} else if b, err := s.catalog.ItemsJSON(c.Request.Context()); err != nil {
		s.log.Warn("shop: catalogue unavailable", "err", err)
		data["Unavailable"] = true
		status = http.StatusServiceUnavailable
	} else {
		var items []surge.Item
		if err := json.Unmarshal(b, &items); err != nil {
			httpx.Error(c, s.log, err)
			return
		}
		data["Topics"] = topics(items)
		switch {
		case searchErr != nil:
			data["SearchError"] = surge.ErrorMessage(searchErr)
			status = http.StatusBadRequest
		case search.Words != "" || search.Topic != "":
			data["Searching"] = true
			search.Limit = surge.MaxSearchLimit
			if b, err = s.catalog.SearchJSON(c.Request.Context(), search); err == nil {
				items = nil
				err = json.Unmarshal(b, &items)
			}
			if err != nil {
				s.log.Warn("shop: search unavailable", "err", err)
				data["SearchError"] = surge.ErrorMessage(err)
				status = httpx.StatusOf(err)
				items = nil
			}
		}
		ids := make(map[int64]string, len(items))
		for _, it := range items {
			if ids[it.ID], err = newOrderID(s.now()); err != nil {
				httpx.Error(c, s.log, err)
				return
			}
		}
		data["Items"], data["OrderIDs"] = items, ids
	}
	data["Account"] = s.signedAccount(c.Request) != 0
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Status(status)
	if err := ui.Render(c.Writer, "shop.html", ui.Page{Title: "Shop", Node: s.cfg.Node, Data: data}); err != nil {
		s.log.Error("render shop page", "err", err)
	}
}

// topics are the catalogue's topics, sorted, for the shop's filter.
func topics(items []surge.Item) []string {
	var out []string
	for _, it := range items {
		if it.Topic != "" {
			out = append(out, it.Topic)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// getCart renders the cart page. The cart itself lives in the browser
// (cart.js); the page carries a fresh order id for its checkout, so a double
// submit is one order.
func (s *Server) getCart(c *gin.Context) {
	id, err := newOrderID(s.now())
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	data := map[string]any{"OrderID": id, "MaxLines": surge.MaxOrderLines, "Unavailable": s.catalog == nil}
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Status(http.StatusOK)
	if err := ui.Render(c.Writer, "cart.html", ui.Page{Title: "Cart", Node: s.cfg.Node, Data: data}); err != nil {
		s.log.Error("render cart page", "err", err)
	}
}

// getItems serves the catalogue from the cache, or a search of it
// (?topic=&q=&limit=&offset=; see items.go).
func (s *Server) getItems(c *gin.Context) {
	if s.catalog == nil {
		httpx.Error(c, s.log, surge.Errorf(surge.EUNAVAILABLE, "catalogue not configured"))
		return
	}
	if len(c.Request.URL.RawQuery) > 0 {
		s.searchItems(c)
		return
	}
	b, err := s.catalog.ItemsJSON(c.Request.Context())
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", b)
}
