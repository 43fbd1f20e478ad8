package capture

import (
	"net/http"

	"github.com/surge-vote/surge/internal/httpx"
	"github.com/surge-vote/surge/internal/surge"
)

type voteRequest struct {
	Poll   string `json:"poll"`
	Choice string `json:"choice"`
	form   bool
}

// decodeVote reads a vote from a JSON or form body of at most limit bytes.
func decodeVote(r *http.Request, limit int64) (voteRequest, error) {
	var req voteRequest
	form, err := httpx.DecodeBody(r, limit, &req)
	if err != nil {
		return voteRequest{}, err
	}
	if form != nil {
		req = voteRequest{Poll: form.Get("poll"), Choice: form.Get("choice"), form: true}
	}
	if req.Choice == "" {
		return voteRequest{}, surge.Errorf(surge.EINVALID, "choice is required")
	}
	return req, nil
}
