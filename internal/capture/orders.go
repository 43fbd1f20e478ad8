package capture

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"

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
}

// decodeOrder reads and validates an order request.
func decodeOrder(r *http.Request, limit int64) (surge.Order, url.Values, error) {
	var req orderRequest
	form, err := decodeBody(r, limit, &req)
	if err != nil {
		return surge.Order{}, nil, err
	}
	item, quantity := numberLiteral(req.Item), numberLiteral(req.Quantity)
	if form != nil {
		req.OrderID, item, quantity = form.Get("order_id"), json.Number(form.Get("item")), json.Number(form.Get("quantity"))
	}
	itemID, err := strconv.ParseInt(string(item), 10, 64)
	if err != nil || itemID <= 0 {
		return surge.Order{}, nil, surge.Errorf(surge.EINVALID, "item must be a positive whole number (an item id)")
	}
	qty, err := strconv.Atoi(string(quantity))
	if err != nil || qty < 1 || qty > surge.MaxOrderQuantity {
		return surge.Order{}, nil, surge.Errorf(surge.EINVALID, "quantity must be a whole number from 1 to %d", surge.MaxOrderQuantity)
	}
	o := surge.Order{ID: req.OrderID, Item: itemID, Quantity: qty}
	if o.ID == "" {
		o.ID = ulid.Make().String()
	}
	return o, form, o.Validate()
}

// postOrder queues an order like a vote: durable in the node's stream before
// the 202. The order id is taken on the shard in the same atomic step, so a
// repeat here queues nothing; a repeat on another shard is queued, and the
// worker applies only the first one by id.
func (s *Server) postOrder(c *gin.Context) {
	o, form, err := decodeOrder(c.Request, s.cfg.MaxBody)
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	o.Node, o.At = s.cfg.Node, s.now().UTC()
	fields := surge.EncodeOrder(o)
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.cfg.AppendTimeout)
	defer cancel()
	_, err = s.producer.AppendOnce(ctx, redis.OrderKey(o.ID), surge.OrderPending, s.cfg.OrderKeyTTL, fields)
	state := surge.OrderState{OrderID: o.ID, Status: surge.OrderPending}
	switch {
	case errors.Is(err, redis.ErrDuplicate):
		// The same order again: answer with what is known of it.
		if s.db != nil {
			if known, err := s.db.OrderState(ctx, o.ID); err == nil {
				state = known
			}
		}
	case err != nil:
		s.log.Warn("queue append failed", "err", err)
		httpx.Error(c, s.log, surge.Unavailable("queue", err))
		return
	default:
		s.orders.Inc()
	}
	if form != nil && wantsHTML(c.Request) {
		// The order page (served where every shard is visible) follows it.
		c.Redirect(http.StatusSeeOther, "/orders/"+url.PathEscape(o.ID))
		return
	}
	c.JSON(http.StatusAccepted, state)
}

// getShop renders the catalogue with a buy form per item. Each form carries
// a fresh order id, so a double submit is one order.
func (s *Server) getShop(c *gin.Context) {
	data := map[string]any{"Items": []surge.Item{}, "OrderIDs": map[int64]string{}}
	status := http.StatusOK
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
		ids := make(map[int64]string, len(items))
		for _, it := range items {
			ids[it.ID] = ulid.Make().String()
		}
		data["Items"], data["OrderIDs"] = items, ids
	}
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Status(status)
	if err := ui.Render(c.Writer, "shop.html", ui.Page{Title: "Shop", Node: s.cfg.Node, Data: data}); err != nil {
		s.log.Error("render shop page", "err", err)
	}
}

// getItems serves the catalogue from the cache.
func (s *Server) getItems(c *gin.Context) {
	if s.catalog == nil {
		httpx.Error(c, s.log, surge.Errorf(surge.EUNAVAILABLE, "catalogue not configured"))
		return
	}
	b, err := s.catalog.ItemsJSON(c.Request.Context())
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", b)
}
