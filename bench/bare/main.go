// Command bare is the baseline of `make bench`: a Gin server whose POST
// /vote answers 202 with a receipt-sized body and does no work, so that the
// capture frontend's throughput can be compared with Gin's own ceiling
// under the same load tool.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address to listen on")
	flag.Parse()
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.POST("/vote", func(c *gin.Context) {
		c.JSON(http.StatusAccepted, gin.H{"receipt": "01JBARE0000000000000000000", "poll": "cats-vs-dogs", "choice": "cats", "node": "bare"})
	})
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	srv := &http.Server{Addr: *listen, Handler: r, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "bare:", err)
		os.Exit(1)
	}
}
