package accounts

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/surge-vote/surge/internal/httpx"
	"github.com/surge-vote/surge/internal/surge"
	"github.com/surge-vote/surge/internal/ui"
)

// Paging of "my orders".
const (
	DefaultOrdersLimit = 20
	MaxOrdersLimit     = 100
)

// errWrongCredentials is the one answer to a failed login, whether the
// email is unknown or the password wrong.
var errWrongCredentials = surge.Errorf(surge.EUNAUTHORIZED, "wrong email or password")

// errNoSession answers a request that needs a login.
var errNoSession = surge.Errorf(surge.EUNAUTHORIZED, "log in first")

// Signed returns the account whose signed, unexpired session cookie r
// carries. It checks the signature alone, never the store, so that an
// order names its buyer while the store is down; a session logged out on
// this browser has no cookie left.
func (s *Service) Signed(r *http.Request) (int64, bool) {
	v, err := s.cookie(r)
	return v.Account, err == nil
}

// Session returns the account of r's session, checked against the store:
// EUNAUTHORIZED without a live one (never logged in, expired, logged out),
// EUNAVAILABLE when the store cannot tell.
func (s *Service) Session(ctx context.Context, r *http.Request) (int64, error) {
	v, err := s.cookie(r)
	if err != nil {
		return 0, errNoSession
	}
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	account, err := s.store.SessionAccount(ctx, idHash(v.ID), s.now())
	switch {
	case surge.ErrorCode(err) == surge.ENOTFOUND:
		return 0, errNoSession
	case err != nil:
		return 0, unavailable(err)
	case account != v.Account:
		return 0, errNoSession
	}
	return account, nil
}

func (s *Service) cookie(r *http.Request) (session, error) {
	ck, err := r.Cookie(CookieName)
	if err != nil {
		return session{}, errInvalid
	}
	return s.cookies.Verify(ck.Value, s.now())
}

// secure reports whether the session cookie gets the Secure flag.
func (s *Service) secure(r *http.Request) bool {
	return httpx.Secure(r, s.opt.Proxies, s.opt.CookieSecure)
}

// PostAccount signs up: 201 with the account (never the password or its
// hash), 409 for an email already registered, 400 naming each bad field.
// A browser's form is sent on to the login page.
func (s *Service) PostAccount(c *gin.Context) {
	var req SignUp
	form, err := httpx.DecodeBody(c.Request, s.cfg.MaxBody, &req)
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	if form != nil {
		req = SignUp{Name: form.Get("name"), Email: form.Get("email"), Password: form.Get("password")}
	}
	browser := form != nil && httpx.WantsHTML(c.Request)
	account, err := s.signUp(c.Request.Context(), req)
	if err != nil {
		if browser && surge.ErrorCode(err) != surge.EUNAVAILABLE {
			s.renderForm(c, "signup.html", "Sign up", err, req.Name, req.Email)
			return
		}
		httpx.Error(c, s.log, err)
		return
	}
	if browser {
		c.Redirect(http.StatusSeeOther, "/login?registered=1")
		return
	}
	c.JSON(http.StatusCreated, account)
}

func (s *Service) signUp(ctx context.Context, req SignUp) (surge.Account, error) {
	name, email, err := req.Validate()
	if err != nil {
		return surge.Account{}, err
	}
	hash, err := s.hasher.Hash(ctx, req.Password)
	if err != nil {
		return surge.Account{}, err
	}
	sctx, cancel := s.storeCtx(ctx)
	defer cancel()
	account, err := s.store.CreateAccount(sctx, surge.Account{Name: name, Email: email}, hash)
	if err != nil {
		if surge.ErrorCode(err) == surge.ECONFLICT {
			return surge.Account{}, &surge.Error{Code: surge.ECONFLICT, Message: "this email is already registered",
				Fields: map[string]string{"email": "is already registered"}}
		}
		return surge.Account{}, unavailable(err)
	}
	s.log.Info("account created", "account", account.ID)
	return account, nil
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// PostLogin logs in: 200 with the account and a session cookie; 401 with
// the same message whether the email is unknown or the password wrong
// (both cost one bcrypt check); 429 once the client is locked out, as on
// admin. A browser's form goes on to the shop.
func (s *Service) PostLogin(c *gin.Context) {
	var req loginRequest
	form, err := httpx.DecodeBody(c.Request, s.cfg.MaxBody, &req)
	if err != nil {
		httpx.Error(c, s.log, err)
		return
	}
	if form != nil {
		req = loginRequest{Email: form.Get("email"), Password: form.Get("password")}
	}
	browser := form != nil && httpx.WantsHTML(c.Request)
	account, err := s.login(c, req)
	if err != nil {
		if browser && surge.ErrorCode(err) != surge.EUNAVAILABLE && surge.ErrorCode(err) != surge.ERATELIMIT {
			s.renderForm(c, "login.html", "Log in", err, "", req.Email)
			return
		}
		httpx.Error(c, s.log, err)
		return
	}
	if browser {
		c.Redirect(http.StatusSeeOther, "/shop")
		return
	}
	c.JSON(http.StatusOK, account)
}

func (s *Service) login(c *gin.Context, req loginRequest) (surge.Account, error) {
	client := httpx.ClientIP(c.Request, s.opt.Proxies)
	if wait := s.lockout.Locked(client); wait > 0 {
		s.log.Warn("login refused: locked out", "client", client, "for", wait)
		return surge.Account{}, surge.RateLimited("too many failed logins; try again later", wait)
	}
	if req.Email == "" || req.Password == "" {
		return surge.Account{}, &surge.Error{Code: surge.EINVALID, Message: "email and password are required",
			Fields: requiredFields(req)}
	}
	ctx := c.Request.Context()
	sctx, cancel := s.storeCtx(ctx)
	account, hash, err := s.store.AccountByEmail(sctx, surge.EmailKey(req.Email))
	cancel()
	if err != nil && surge.ErrorCode(err) != surge.ENOTFOUND {
		return surge.Account{}, unavailable(err)
	}
	ok, err := s.hasher.Check(ctx, hash, req.Password) // hash is nil for an unknown email: same cost
	if err != nil {
		return surge.Account{}, err
	}
	if !ok {
		s.lockout.Fail(client)
		s.log.Warn("login failed", "client", client) // never the email or the password
		return surge.Account{}, errWrongCredentials
	}
	v := session{Account: account.ID, ID: newSessionID(), Expires: s.now().Add(s.cfg.SessionLifetime).Truncate(time.Second)}
	sctx, cancel = s.storeCtx(ctx)
	defer cancel()
	if err := s.store.CreateSession(sctx, idHash(v.ID), v.Account, v.Expires); err != nil {
		return surge.Account{}, unavailable(err)
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: CookieName, Value: s.cookies.Sign(v), Path: "/",
		Expires: v.Expires, MaxAge: int(s.cfg.SessionLifetime.Seconds()),
		HttpOnly: true, Secure: s.secure(c.Request), SameSite: http.SameSiteLaxMode})
	s.log.Info("logged in", "account", account.ID)
	return account, nil
}

func requiredFields(req loginRequest) map[string]string {
	fields := map[string]string{}
	if req.Email == "" {
		fields["email"] = "is required"
	}
	if req.Password == "" {
		fields["password"] = "is required"
	}
	return fields
}

// PostLogout revokes the session in the store and clears the cookie. The
// cookie is cleared even when the store is down (503): this browser is
// logged out, and the session row expires by itself.
func (s *Service) PostLogout(c *gin.Context) {
	http.SetCookie(c.Writer, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: s.secure(c.Request), SameSite: http.SameSiteLaxMode})
	if v, err := s.cookie(c.Request); err == nil {
		ctx, cancel := s.storeCtx(c.Request.Context())
		defer cancel()
		if err := s.store.DeleteSession(ctx, idHash(v.ID)); err != nil {
			httpx.Error(c, s.log, unavailable(err))
			return
		}
	}
	if httpx.WantsHTML(c.Request) {
		c.Redirect(http.StatusSeeOther, "/")
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "logged out"})
}

// GetMyOrders lists the session's account's orders, newest first, a page
// of ?limit= (default 20, at most 100) older than ?before=<order id>. A
// full page links the next one (Link: rel="next").
func (s *Service) GetMyOrders(c *gin.Context) {
	orders, next, err := s.myOrders(c)
	c.Header("Cache-Control", "no-store")
	if err == nil && next != "" {
		c.Header("Link", fmt.Sprintf(`<%s>; rel="next"`, next))
	}
	httpx.List(c, s.log, orders, err)
}

func (s *Service) myOrders(c *gin.Context) (orders []surge.AccountOrder, next string, err error) {
	account, err := s.Session(c.Request.Context(), c.Request)
	if err != nil {
		return nil, "", err
	}
	limit, before, err := parsePage(c.Request.URL.Query())
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := s.storeCtx(c.Request.Context())
	defer cancel()
	orders, err = s.store.AccountOrders(ctx, account, before, limit)
	if err != nil {
		return nil, "", unavailable(err)
	}
	if len(orders) == limit {
		next = c.Request.URL.Path + "?" + url.Values{"before": {orders[len(orders)-1].OrderID},
			"limit": {strconv.Itoa(limit)}}.Encode()
	}
	return orders, next, nil
}

// parsePage reads ?limit= and ?before=, naming a bad or unknown parameter.
func parsePage(q url.Values) (limit int, before string, err error) {
	fields := map[string]string{}
	limit = DefaultOrdersLimit
	for name, values := range q {
		if len(values) != 1 {
			fields[name] = "must be given once"
			continue
		}
		switch v := values[0]; name {
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > MaxOrdersLimit {
				fields[name] = fmt.Sprintf("must be a whole number from 1 to %d", MaxOrdersLimit)
			}
			limit = n
		case "before":
			if !surge.ValidOrderID(v) {
				fields[name] = "must be an order id"
			}
			before = v
		default:
			fields[name] = `is not a parameter; the parameters are "limit" and "before"`
		}
	}
	if len(fields) > 0 {
		return 0, "", &surge.Error{Code: surge.EINVALID, Message: "invalid page", Fields: fields}
	}
	return limit, before, nil
}

// GetSignUpPage serves the sign-up form.
func (s *Service) GetSignUpPage(c *gin.Context) {
	s.renderPage(c, http.StatusOK, "signup.html", "Sign up", nil)
}

// GetLoginPage serves the login form.
func (s *Service) GetLoginPage(c *gin.Context) {
	s.renderPage(c, http.StatusOK, "login.html", "Log in", map[string]any{"Registered": c.Query("registered") != ""})
}

// GetMyOrdersPage serves "my orders": the login page's way without a
// session, a 503 page while the store is down.
func (s *Service) GetMyOrdersPage(c *gin.Context) {
	orders, next, err := s.myOrders(c)
	switch surge.ErrorCode(err) {
	case "":
		s.renderPage(c, http.StatusOK, "myorders.html", "My orders", map[string]any{"Orders": orders, "Next": next})
	case surge.EUNAUTHORIZED:
		c.Redirect(http.StatusSeeOther, "/login")
	case surge.EUNAVAILABLE:
		s.renderPage(c, http.StatusServiceUnavailable, "myorders.html", "My orders", map[string]any{"Unavailable": true})
	default:
		httpx.Error(c, s.log, err)
	}
}

// renderForm shows a form again with what was wrong: each field's problem
// next to it, or the message for the whole form.
func (s *Service) renderForm(c *gin.Context, page, title string, err error, name, email string) {
	fields := map[string]string{}
	var se *surge.Error
	if errors.As(err, &se) && len(se.Fields) > 0 && se.Code != surge.EUNAUTHORIZED {
		fields = se.Fields
	} else {
		fields["form"] = surge.ErrorMessage(err)
	}
	s.renderPage(c, httpx.StatusOf(err), page, title, map[string]any{"Errors": fields, "Name": name, "Email": email})
}

func (s *Service) renderPage(c *gin.Context, status int, page, title string, data map[string]any) {
	if data == nil {
		data = map[string]any{}
	}
	if _, ok := data["Errors"]; !ok {
		data["Errors"] = map[string]string{} // none; and the page's data is never empty, which {{with}} would skip
	}
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Header("Cache-Control", "no-store")
	c.Status(status)
	if err := ui.Render(c.Writer, page, ui.Page{Title: title, Node: s.opt.Node, Data: data}); err != nil {
		s.log.Error("render "+page, "err", err)
	}
}
