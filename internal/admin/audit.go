package admin

import (
	"encoding/csv"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/surge-vote/surge/internal/httpx"
	"github.com/surge-vote/surge/internal/postgres"
	"github.com/surge-vote/surge/internal/surge"
)

// Audit pages: a poll can have millions of voters, so the audit is read a
// page at a time, in voter order.
const (
	auditPage    = 5000
	auditPageMax = 50000
)

// getAuditVotes lists the vote that counts for each voter of a poll (the
// :poll parameter, or ?poll= on /admin/api/audit/votes), a page at a time:
// ?after=<the last voter seen>&limit=<n>; the next page's address is in
// the Link header (rel="next") while there may be more. ?format=csv gives
// the same rows as CSV.
func (s *Server) getAuditVotes(c *gin.Context) {
	poll := c.Param("poll")
	if poll == "" {
		poll = c.DefaultQuery("poll", surge.DefaultPollID)
	}
	format, limit, err := auditParams(c)
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	if !surge.ValidSlug(poll) || !s.pollExists(c, poll) {
		if !c.IsAborted() {
			httpx.Error(c, s.log, surge.Errorf(surge.ENOTFOUND, "unknown poll %q", poll))
		}
		return
	}
	votes, err := s.store.CountedVotes(c.Request.Context(), poll, c.Query("after"), limit)
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	if len(votes) == limit {
		next := url.URL{Path: c.Request.URL.Path, RawQuery: c.Request.URL.Query().Encode()}
		q := next.Query()
		q.Set("after", votes[len(votes)-1].Voter)
		q.Set("limit", strconv.Itoa(limit))
		next.RawQuery = q.Encode()
		c.Header("Link", "<"+next.String()+`>; rel="next"`)
	}
	if format == "csv" {
		writeAuditCSV(c, poll, votes)
		return
	}
	httpx.List(c, s.log, votes, nil)
}

// pollExists answers whether poll is stored; on a store failure it answers
// the error itself and aborts.
func (s *Server) pollExists(c *gin.Context, poll string) bool {
	polls, err := s.store.Polls(c.Request.Context())
	if err != nil {
		httpx.Error(c, s.log, err)
		c.Abort()
		return false
	}
	for _, p := range polls {
		if p.ID == poll {
			return true
		}
	}
	return false
}

// auditParams reads ?format= (json or csv) and ?limit= (1 to auditPageMax).
func auditParams(c *gin.Context) (format string, limit int, err error) {
	fields := map[string]string{}
	format = c.DefaultQuery("format", "json")
	if format != "json" && format != "csv" {
		fields["format"] = "must be json or csv"
	}
	limit = auditPage
	if v, ok := c.GetQuery("limit"); ok {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > auditPageMax {
			fields["limit"] = "must be a whole number from 1 to " + strconv.Itoa(auditPageMax)
		}
	}
	if len(fields) > 0 {
		return "", 0, &surge.Error{Code: surge.EINVALID, Message: "invalid audit query", Fields: fields}
	}
	return format, limit, nil
}

func writeAuditCSV(c *gin.Context, poll string, votes []postgres.VoteRecord) {
	c.Header("Content-Type", "text/csv; charset=utf-8")
	c.Header("Content-Disposition", `attachment; filename="`+poll+`-audit.csv"`)
	c.Status(http.StatusOK)
	w := csv.NewWriter(c.Writer)
	w.Write([]string{"voter", "choice", "version", "event_id", "node", "cast_at", "committed_at"})
	for _, v := range votes {
		cast := ""
		if v.CastAt != nil {
			cast = v.CastAt.Format(time.RFC3339Nano)
		}
		w.Write([]string{v.Voter, v.Choice, strconv.FormatInt(v.Version, 10), v.EventID, v.Node, cast, v.CommittedAt.Format(time.RFC3339Nano)})
	}
	w.Flush()
}
