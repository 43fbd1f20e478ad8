package capture

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/surge-vote/surge/internal/httpx"
	"github.com/surge-vote/surge/internal/surge"
)

// searchItems answers GET /api/items?topic=&q=&limit=&offset= from the
// catalogue cache (see catalog.Cache.SearchJSON).
func (s *Server) searchItems(c *gin.Context) {
	q, err := parseItemQuery(c.Request.URL.Query())
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	b, err := s.catalog.SearchJSON(c.Request.Context(), q)
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", b)
}

// parseItemQuery reads a catalogue search, naming every bad parameter. An
// unknown parameter is refused rather than ignored: a typo would otherwise
// return the whole catalogue.
func parseItemQuery(v url.Values) (surge.ItemQuery, error) {
	fields := map[string]string{}
	q := surge.ItemQuery{Limit: surge.DefaultSearchLimit}
	for name, values := range v {
		if len(values) != 1 {
			fields[name] = "must be given once"
			continue
		}
		value := values[0]
		switch name {
		case "topic":
			q.Topic = strings.ToLower(strings.TrimSpace(value))
			if q.Topic != "" && (!surge.ValidSlug(q.Topic) || len(q.Topic) > surge.MaxTopicLength) {
				fields["topic"] = "must be a topic: lowercase letters, digits or dashes"
			}
		case "q":
			q.Words = strings.Join(strings.Fields(value), " ")
			if !utf8.ValidString(q.Words) || len(q.Words) > surge.MaxSearchWords || strings.ContainsRune(q.Words, 0) {
				fields["q"] = "must be at most " + strconv.Itoa(surge.MaxSearchWords) + " bytes of text"
			}
		case "limit":
			if n, err := strconv.Atoi(value); err != nil || n < 1 || n > surge.MaxSearchLimit {
				fields["limit"] = "must be a whole number from 1 to " + strconv.Itoa(surge.MaxSearchLimit)
			} else {
				q.Limit = n
			}
		case "offset":
			if n, err := strconv.Atoi(value); err != nil || n < 0 || n > surge.MaxSearchOffset {
				fields["offset"] = "must be a whole number from 0 to " + strconv.Itoa(surge.MaxSearchOffset)
			} else {
				q.Offset = n
			}
		default:
			fields[name] = "is not a search parameter; they are topic, q, limit and offset"
		}
	}
	if len(fields) > 0 {
		return surge.ItemQuery{}, &surge.Error{Code: surge.EINVALID, Message: "invalid catalogue search", Fields: fields}
	}
	return q, nil
}

// getItem answers GET /api/items/<id>: an item on sale, from the cache.
func (s *Server) getItem(c *gin.Context) {
	if s.catalog == nil {
		httpx.Error(c, s.log, surge.Errorf(surge.EUNAVAILABLE, "catalogue not configured"))
		return
	}
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id < 1 {
		httpx.Error(c, s.log, surge.Errorf(surge.ENOTFOUND, "unknown item %q", c.Param("id")))
		return
	}
	item, ok, err := s.catalog.Item(c.Request.Context(), id)
	switch {
	case err != nil:
		httpx.Error(c, s.log, err)
	case !ok:
		httpx.Error(c, s.log, surge.Errorf(surge.ENOTFOUND, "unknown item %d", id))
	default:
		c.JSON(http.StatusOK, item)
	}
}
