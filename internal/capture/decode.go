package capture

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
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
	var req voteRequest
	form, err := decodeBody(r, limit, &req)
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

const mediaTypes = "Content-Type must be application/json or application/x-www-form-urlencoded"

// decodeBody reads a body of at most limit bytes. JSON is decoded strictly
// into dst (unknown fields and trailing data are errors, numbers stay
// json.Number); a form is returned instead.
func decodeBody(r *http.Request, limit int64, dst any) (url.Values, error) {
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return nil, surge.Errorf(surge.EINVALID, mediaTypes)
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, surge.Errorf(surge.ETOOLARGE, "body is larger than %d bytes", limit)
		}
		return nil, surge.Errorf(surge.EINVALID, "cannot read body")
	}
	if !utf8.Valid(body) {
		return nil, surge.Errorf(surge.EINVALID, "body is not valid UTF-8")
	}
	switch mediaType {
	case "application/json":
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		dec.UseNumber()
		if err := dec.Decode(dst); err != nil {
			return nil, surge.Errorf(surge.EINVALID, "invalid JSON: %v", err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, surge.Errorf(surge.EINVALID, "invalid JSON: trailing data after the value")
		}
		return nil, nil
	case "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, surge.Errorf(surge.EINVALID, "invalid form: %v", err)
		}
		// Percent-escapes can smuggle bytes the body check never saw.
		for k, vs := range form {
			if !utf8.ValidString(k) {
				return nil, surge.Errorf(surge.EINVALID, "form is not valid UTF-8")
			}
			for _, v := range vs {
				if !utf8.ValidString(v) {
					return nil, surge.Errorf(surge.EINVALID, "form value of %q is not valid UTF-8", k)
				}
			}
		}
		return form, nil
	default:
		return nil, surge.Errorf(surge.EINVALID, mediaTypes)
	}
}

// numberLiteral returns the text of a JSON number literal, "" for an absent
// or null value, and "not-a-number" for anything else (a quoted "2" is a
// string, not a quantity), so that integer parsing rejects it.
func numberLiteral(raw json.RawMessage) json.Number {
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return ""
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
		return json.Number(raw)
	default:
		return "not-a-number"
	}
}

func wantsHTML(r *http.Request) bool {
	return bytes.Contains([]byte(r.Header.Get("Accept")), []byte("text/html"))
}
