package watermill

// go-redis over TLS (`Options.TLSConfig`) against Rill's tls-port, and Watermill redisstream on such a client.
//
// Environment (set by compat/run): RILL_TLS_PORT, RILL_TLS_CA, RILL_TLS_CERT, RILL_TLS_KEY (a client certificate
// signed by the server's CA); without them the tests are skipped.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
)

// tlsOptions: go-redis options for the TLS port, presenting the client certificate when withCert.
func tlsOptions(t *testing.T, withCert bool) *redis.Options {
	t.Helper()
	port := os.Getenv("RILL_TLS_PORT")
	if port == "" {
		t.Skip("RILL_TLS_PORT is not set: no TLS port (run through compat/run)")
	}
	caPEM, err := os.ReadFile(os.Getenv("RILL_TLS_CA"))
	if err != nil {
		t.Fatalf("read CA: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA certificate in RILL_TLS_CA")
	}
	config := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if withCert {
		cert, err := tls.LoadX509KeyPair(os.Getenv("RILL_TLS_CERT"), os.Getenv("RILL_TLS_KEY"))
		if err != nil {
			t.Fatalf("client certificate: %v", err)
		}
		config.Certificates = []tls.Certificate{cert}
	}
	host, _, _ := net.SplitHostPort(serverAddr(t))
	return &redis.Options{Addr: net.JoinHostPort(host, port), Protocol: protocol(t), TLSConfig: config}
}

func TestGoRedisTLSConfig(t *testing.T) {
	c := redis.NewClient(tlsOptions(t, true))
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	key := "compat:go:tls:" + watermill.NewShortUUID()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING over TLS: %v", err)
	}
	id, err := c.XAdd(ctx, &redis.XAddArgs{Stream: key, ID: "1-1", Values: []string{"f", "tls"}}).Result()
	if err != nil || id != "1-1" {
		t.Fatalf("XADD over TLS: %q %v", id, err)
	}
	// A pipeline and a reply larger than a socket buffer.
	big := strings.Repeat("x", 256*1024)
	pipe := c.Pipeline()
	for i := 0; i < 16; i++ {
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: []string{"v", big}})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("pipeline over TLS: %v", err)
	}
	entries, err := c.XRange(ctx, key, "-", "+").Result()
	if err != nil || len(entries) != 17 || entries[16].Values["v"] != big {
		t.Fatalf("XRANGE over TLS: %d entries, %v", len(entries), err)
	}
	// A blocking read over TLS, woken by a write on the plain port.
	plain := newClient(t, serverAddr(t))
	go func() {
		time.Sleep(300 * time.Millisecond)
		plain.XAdd(context.Background(), &redis.XAddArgs{Stream: key + ":b", ID: "5-1", Values: []string{"k", "v"}})
	}()
	got, err := c.XRead(ctx, &redis.XReadArgs{Streams: []string{key + ":b", "$"}, Block: 5 * time.Second}).Result()
	if err != nil || len(got) != 1 || len(got[0].Messages) != 1 || got[0].Messages[0].ID != "5-1" {
		t.Fatalf("XREAD BLOCK over TLS: %v %v", got, err)
	}
}

func TestGoRedisTLSWithoutClientCertificateIsRefused(t *testing.T) {
	opts := tlsOptions(t, false)
	opts.MaxRetries = -1
	c := redis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("PING without a client certificate was served (tls-auth-clients yes)")
	}
}

// Watermill redisstream publishing and consuming through a TLS go-redis client.
func TestWatermillOverTLS(t *testing.T) {
	c := redis.NewClient(tlsOptions(t, true))
	defer c.Close()
	logger := watermill.NopLogger{}
	pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: c}, logger)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := redisstream.NewSubscriber(redisstream.SubscriberConfig{Client: c, ConsumerGroup: "tls"}, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	topic := "compat-go-tls-" + watermill.NewShortUUID()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := 0; i < n; i++ {
		if err := pub.Publish(topic, message.NewMessage(watermill.NewUUID(), []byte("tls"))); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		select {
		case m := <-msgs:
			m.Ack()
		case <-ctx.Done():
			t.Fatalf("received %d of %d messages over TLS", i, n)
		}
	}
}
