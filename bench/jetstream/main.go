// Command jetstream-bench is bench/run's load program for NATS JetStream, the peer that runs beside Rill and Redis
// in the XADD and drain scenarios. It speaks only to a nats-server that bench/run started on loopback.
//
//	jetstream-bench ready   -addr A [-timeout 60s]
//	    Waits until the server accepts a connection and its JetStream API answers (the analogue of PING → PONG).
//	jetstream-bench publish -addr A -stream S -subject T -messages N -conns 50 -pipeline P -size 100 [-random]
//	    Creates stream S (file storage, 1 replica, limits retention) if it is missing, then publishes N messages of
//	    `size` bytes from `conns` connections. Pipeline 1: each publisher waits for the PubAck of a message before it
//	    publishes the next (js.Publish). Pipeline P>1: each publisher publishes P messages asynchronously
//	    (js.PublishAsync), then waits for all P PubAcks before the next P, as redis-benchmark -P and rill-loadgen
//	    fill do. Publishers claim messages from one counter, so the total is exactly N.
//	    Prints `publish messages=N seconds=S rate=R`.
//	jetstream-bench drain   -addr A -stream S -consumer C -consumers 4 -batch 100 [-ack last-sync|async]
//	    Creates durable pull consumer C on S (AckExplicit, deliver all), then `consumers` connections share it, each
//	    looping FetchNoWait(batch) + an ack of every message it got, until a fetch comes back empty (the stream has
//	    been read to its end, like XREADGROUP without BLOCK returning nothing).
//	    Ack modes: last-sync (default): every message of the batch is acked with Ack() (fire and forget) and the
//	    last one with DoubleAck(), which waits for the server's reply; the server handles one consumer's acks in
//	    order, so that reply means the whole batch is acked. One waited round trip per batch, like XACK with the
//	    batch's 100 IDs. async: every message acked with Ack(), nothing waited for (what most NATS code does).
//	    Prints `drain delivered=D seconds=S rate=R timed_out=0|1 ack_floor=F ack_pending=P redelivered=X`.
//
// Every clock runs from the moment all connections are open (and the stream or consumer exists) to the moment
// the last publisher or consumer finishes, as rill-loadgen and redis-benchmark measure.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: jetstream-bench ready|publish|drain [flags] (see the package comment)")
		os.Exit(2)
	}
	var err error
	var line string
	switch os.Args[1] {
	case "ready":
		line, err = ready(os.Args[2:])
	case "publish":
		line, err = publish(os.Args[2:])
	case "drain":
		line, err = drain(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "jetstream-bench:", err)
		os.Exit(1)
	}
	fmt.Println(line)
}

func connect(addr string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect("nats://"+addr, nats.NoReconnect(), nats.Timeout(10*time.Second))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

func ready(args []string) (string, error) {
	fs := flag.NewFlagSet("ready", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:4222", "server address")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after this long")
	_ = fs.Parse(args)
	started := time.Now()
	deadline := started.Add(*timeout)
	for {
		nc, js, err := connect(*addr)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err = js.AccountInfo(ctx)
			cancel()
			nc.Close()
			if err == nil {
				return fmt.Sprintf("ready seconds=%.3f", time.Since(started).Seconds()), nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("not ready after %s: %w", *timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// streamConfig is the stream every scenario uses: file storage, one replica, limits retention (acks do not delete
// messages, as XACK does not delete entries), no limits on count, size or age.
func streamConfig(name, subject string) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:      name,
		Subjects:  []string{subject},
		Storage:   jetstream.FileStorage,
		Replicas:  1,
		Retention: jetstream.LimitsPolicy,
		Discard:   jetstream.DiscardOld,
	}
}

func publish(args []string) (string, error) {
	fs := flag.NewFlagSet("publish", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:4222", "server address")
	stream := fs.String("stream", "BENCH", "stream name (created if missing)")
	subject := fs.String("subject", "bench", "subject published to (the stream's only subject)")
	messages := fs.Int64("messages", 20000, "messages to publish in total")
	conns := fs.Int("conns", 50, "concurrent publishers, one connection each")
	pipeline := fs.Int64("pipeline", 1, "messages in flight per publisher (1: wait for each PubAck)")
	size := fs.Int("size", 100, "payload bytes")
	random := fs.Bool("random", false, "pseudo-random printable payload per message (else 100 × 'v', as redis-benchmark)")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	_ = fs.Parse(args)
	if *pipeline < 1 {
		*pipeline = 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	type pub struct {
		nc *nats.Conn
		js jetstream.JetStream
	}
	pubs := make([]pub, 0, *conns)
	defer func() {
		for _, p := range pubs {
			p.nc.Close()
		}
	}()
	for i := 0; i < max(*conns, 1); i++ {
		nc, js, err := connect(*addr)
		if err != nil {
			return "", fmt.Errorf("connect: %w", err)
		}
		pubs = append(pubs, pub{nc, js})
	}
	if _, err := pubs[0].js.CreateOrUpdateStream(ctx, streamConfig(*stream, *subject)); err != nil {
		return "", fmt.Errorf("create stream: %w", err)
	}

	var claimed atomic.Int64
	errs := make(chan error, len(pubs))
	var wg sync.WaitGroup
	started := time.Now()
	for i, p := range pubs {
		wg.Add(1)
		go func(seed uint64, js jetstream.JetStream) {
			defer wg.Done()
			rng := xorshift(0x9E3779B97F4A7C15 ^ seed)
			futures := make([]jetstream.PubAckFuture, 0, *pipeline)
			payloadOf := func() []byte {
				b := make([]byte, *size)
				if *random {
					rng.fillPrintable(b)
				} else {
					for j := range b {
						b[j] = 'v'
					}
				}
				return b
			}
			fixed := payloadOf()
			for {
				first := claimed.Add(*pipeline) - *pipeline
				if first >= *messages {
					return
				}
				n := min(*pipeline, *messages-first)
				if *pipeline == 1 {
					data := fixed
					if *random {
						data = payloadOf()
					}
					if _, err := js.Publish(ctx, *subject, data); err != nil {
						errs <- fmt.Errorf("publish: %w", err)
						return
					}
					continue
				}
				futures = futures[:0]
				for j := int64(0); j < n; j++ {
					data := fixed
					if *random {
						data = payloadOf()
					}
					f, err := js.PublishAsync(*subject, data)
					if err != nil {
						errs <- fmt.Errorf("publish async: %w", err)
						return
					}
					futures = append(futures, f)
				}
				for _, f := range futures {
					select {
					case <-f.Ok():
					case err := <-f.Err():
						errs <- fmt.Errorf("publish async ack: %w", err)
						return
					case <-ctx.Done():
						errs <- fmt.Errorf("publish async ack: %w", ctx.Err())
						return
					}
				}
			}
		}(uint64(i+1), p.js)
	}
	wg.Wait()
	seconds := time.Since(started).Seconds()
	close(errs)
	if err := <-errs; err != nil {
		return "", err
	}
	return fmt.Sprintf("publish messages=%d seconds=%.3f rate=%.0f", *messages, seconds, float64(*messages)/seconds), nil
}

func drain(args []string) (string, error) {
	fs := flag.NewFlagSet("drain", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:4222", "server address")
	stream := fs.String("stream", "BENCH", "stream to read")
	consumer := fs.String("consumer", "g4", "durable pull consumer (created)")
	consumers := fs.Int("consumers", 4, "connections fetching from the one consumer")
	batch := fs.Int("batch", 100, "messages per fetch")
	ackMode := fs.String("ack", "last-sync", "last-sync (acks sent, the last one waited for) or async (none waited for)")
	maxSeconds := fs.Duration("max-seconds", 10*time.Minute, "stop after this long and report what was drained")
	_ = fs.Parse(args)
	if *ackMode != "last-sync" && *ackMode != "async" {
		return "", fmt.Errorf("-ack must be last-sync or async, not %q", *ackMode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *maxSeconds+time.Minute)
	defer cancel()

	adminNC, admin, err := connect(*addr)
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer adminNC.Close()
	_, err = admin.CreateOrUpdateConsumer(ctx, *stream, jetstream.ConsumerConfig{
		Durable:       *consumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		// No limit on messages delivered and not yet acked, as a Redis consumer group has none. With last-sync at
		// most consumers × batch are pending anyway.
		MaxAckPending: -1,
	})
	if err != nil {
		return "", fmt.Errorf("create consumer: %w", err)
	}
	workers := make([]jetstream.Consumer, 0, *consumers)
	for i := 0; i < max(*consumers, 1); i++ {
		nc, js, err := connect(*addr)
		if err != nil {
			return "", fmt.Errorf("connect: %w", err)
		}
		defer nc.Close()
		c, err := js.Consumer(ctx, *stream, *consumer)
		if err != nil {
			return "", fmt.Errorf("bind consumer: %w", err)
		}
		workers = append(workers, c)
	}

	var delivered atomic.Int64
	var stop atomic.Bool
	errs := make(chan error, len(workers))
	var wg sync.WaitGroup
	started := time.Now()
	watchdog := time.AfterFunc(*maxSeconds, func() { stop.Store(true) })
	for _, c := range workers {
		wg.Add(1)
		go func(c jetstream.Consumer) {
			defer wg.Done()
			for !stop.Load() {
				mb, err := c.FetchNoWait(*batch)
				if err != nil {
					errs <- fmt.Errorf("fetch: %w", err)
					return
				}
				var got []jetstream.Msg
				for m := range mb.Messages() {
					got = append(got, m)
				}
				if err := mb.Error(); err != nil {
					errs <- fmt.Errorf("fetch: %w", err)
					return
				}
				if len(got) == 0 {
					return
				}
				delivered.Add(int64(len(got)))
				for i, m := range got {
					if i == len(got)-1 && *ackMode == "last-sync" {
						err = m.DoubleAck(ctx)
					} else {
						err = m.Ack()
					}
					if err != nil {
						errs <- fmt.Errorf("ack: %w", err)
						return
					}
				}
			}
		}(c)
	}
	wg.Wait()
	seconds := time.Since(started).Seconds()
	timedOut := !watchdog.Stop()
	close(errs)
	if err := <-errs; err != nil {
		return "", err
	}
	// What the server recorded: with last-sync every ack has been applied by now.
	var info *jetstream.ConsumerInfo
	for attempt := 0; ; attempt++ {
		info, err = workers[0].Info(ctx)
		if err != nil {
			return "", fmt.Errorf("consumer info: %w", err)
		}
		if info.NumAckPending == 0 || attempt == 50 {
			break
		}
		time.Sleep(20 * time.Millisecond) // async acks may still be on their way
	}
	d := delivered.Load()
	return fmt.Sprintf("drain delivered=%d seconds=%.3f rate=%.0f timed_out=%d ack_floor=%d ack_pending=%d redelivered=%d",
		d, seconds, float64(d)/seconds, b2i(timedOut), info.AckFloor.Stream, info.NumAckPending, info.NumRedelivered), nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// xorshift is rill-loadgen fill's generator (xorshift64, 6 bits per byte from a 64-character alphabet): every
// message gets its own printable payload, so nothing downstream can compress repeated values away.
type xorshift uint64

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

func (x *xorshift) fillPrintable(out []byte) {
	s := uint64(*x)
	for start := 0; start < len(out); start += 8 {
		s ^= s << 13
		s ^= s >> 7
		s ^= s << 17
		bits := s
		for i := start; i < min(start+8, len(out)); i++ {
			out[i] = alphabet[bits&63]
			bits >>= 6
		}
	}
	*x = xorshift(s)
}
