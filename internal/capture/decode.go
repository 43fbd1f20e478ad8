package capture

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"unicode/utf8"

	"github.com/surge-vote/surge/internal/surge"
)

type voteRequest struct {
	Poll   string `json:"poll"`
	Choice string `json:"choice"`
	form   bool
}

// decodeVote reads a vote from a JSON or form body of at most limit bytes.
func decodeVote(r *http.Request, limit int64) (voteRequest, error) {
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return voteRequest{}, surge.Errorf(surge.EINVALID, "Content-Type must be application/json or application/x-www-form-urlencoded")
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return voteRequest{}, surge.Errorf(surge.ETOOLARGE, "body is larger than %d bytes", limit)
		}
		return voteRequest{}, surge.Errorf(surge.EINVALID, "cannot read body")
	}
	if !utf8.Valid(body) {
		return voteRequest{}, surge.Errorf(surge.EINVALID, "body is not valid UTF-8")
	}
	var req voteRequest
	switch mediaType {
	case "application/json":
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return voteRequest{}, surge.Errorf(surge.EINVALID, "invalid JSON: %v", err)
		}
		if dec.More() {
			return voteRequest{}, surge.Errorf(surge.EINVALID, "invalid JSON: trailing data")
		}
	case "application/x-www-form-urlencoded":
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		if err := r.ParseForm(); err != nil {
			return voteRequest{}, surge.Errorf(surge.EINVALID, "invalid form: %v", err)
		}
		req = voteRequest{Poll: r.PostForm.Get("poll"), Choice: r.PostForm.Get("choice"), form: true}
	default:
		return voteRequest{}, surge.Errorf(surge.EINVALID, "Content-Type must be application/json or application/x-www-form-urlencoded")
	}
	if req.Choice == "" {
		return voteRequest{}, surge.Errorf(surge.EINVALID, "choice is required")
	}
	return req, nil
}

func wantsHTML(r *http.Request) bool {
	return bytes.Contains([]byte(r.Header.Get("Accept")), []byte("text/html"))
}
