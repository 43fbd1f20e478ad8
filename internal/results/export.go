package results

import (
	"encoding/csv"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/surge-vote/surge/internal/httpx"
	"github.com/surge-vote/surge/internal/surge"
)

// Tally is a poll's count as exported: final once the poll is closed and
// the workers have drained every shard, so every vote captured before the
// close has been counted.
type Tally struct {
	surge.Results
	Title    string     `json:"title"`
	Options  []string   `json:"options"`
	OpensAt  *time.Time `json:"opens_at,omitempty"`
	ClosesAt *time.Time `json:"closes_at,omitempty"`
	State    string     `json:"state"`
	Final    bool       `json:"final"`
}

// getExport answers GET /results/api/polls/:poll/export?format=json|csv.
// The counts are read from Postgres, not the cache: an export is the record.
// The per-voter audit is admin's (/admin/api/polls/:poll/audit).
func (s *Server) getExport(c *gin.Context) {
	format := c.DefaultQuery("format", "json")
	if format != "json" && format != "csv" {
		httpx.Error(c, s.log, &surge.Error{Code: surge.EINVALID, Message: "invalid export query",
			Fields: map[string]string{"format": "must be json or csv"}})
		return
	}
	ctx := c.Request.Context()
	id := c.Param("poll")
	polls, err := s.live.Polls(ctx)
	if err != nil {
		httpx.Error(c, s.log, unavailableUnlessDomain(err))
		return
	}
	var poll *surge.Poll
	for i := range polls {
		if polls[i].ID == id {
			poll = &polls[i]
		}
	}
	if poll == nil {
		httpx.Error(c, s.log, surge.Errorf(surge.ENOTFOUND, "unknown poll %q", id))
		return
	}
	t := Tally{Title: poll.Title, Options: poll.Options, OpensAt: poll.OpensAt, ClosesAt: poll.ClosesAt, State: poll.State(s.now())}
	if t.State == surge.PollClosed {
		// Drained first, counts after: a worker acknowledges only after
		// its commit, so counts read once the shards are empty include
		// every vote captured before the close.
		shards, err := s.queued.Backlog(ctx)
		if err != nil {
			httpx.Error(c, s.log, surge.Unavailable("queue", err))
			return
		}
		t.Final = true
		for _, sh := range shards {
			t.Final = t.Final && sh.Drained()
		}
	}
	if t.Results, err = s.store.Results(ctx, id); err != nil {
		httpx.Error(c, s.log, unavailableUnlessDomain(err))
		return
	}
	if format == "json" {
		c.JSON(http.StatusOK, t)
		return
	}
	c.Header("Content-Type", "text/csv; charset=utf-8")
	c.Header("Content-Disposition", `attachment; filename="`+id+`-results.csv"`)
	c.Status(http.StatusOK)
	w := csv.NewWriter(c.Writer)
	w.Write([]string{"poll", "option", "votes", "state", "final"})
	for _, o := range t.Options {
		w.Write([]string{id, o, strconv.FormatInt(t.Counts[o], 10), t.State, strconv.FormatBool(t.Final)})
	}
	w.Flush()
}
