// Command watermill-bench measures end-to-end messages/s through Watermill's redisstream Pub/Sub against one
// server (Rill or Redis): publishers call Publish (one XADD per message, as Watermill does), subscribers in one
// consumer group receive and Ack each message. The clock runs from the first Publish to the last Ack, so the result
// is what a Watermill application would see, client overheads included.
//
// It prints one line, `watermill messages=N seconds=S rate=R publish_rate=P`, for bench/run to parse.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:6379", "server address")
	messages := flag.Int("messages", 20000, "messages to publish and receive")
	publishers := flag.Int("publishers", 16, "concurrent publishing goroutines")
	subscribers := flag.Int("subscribers", 4, "subscribers (consumers) in the group")
	size := flag.Int("size", 100, "payload bytes")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after this long")
	flag.Parse()
	if err := run(*addr, *messages, *publishers, *subscribers, *size, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "watermill-bench:", err)
		os.Exit(1)
	}
}

func run(addr string, messages, publishers, subscribers, size int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client := redis.NewClient(&redis.Options{Addr: addr, PoolSize: publishers + 2*subscribers + 4})
	defer client.Close()
	logger := watermill.NopLogger{}
	topic := "watermill-bench-" + watermill.NewShortUUID()

	var received atomic.Int64
	allReceived := make(chan struct{})
	var closeOnce sync.Once
	for i := 0; i < subscribers; i++ {
		sub, err := redisstream.NewSubscriber(redisstream.SubscriberConfig{
			Client:        client,
			ConsumerGroup: "bench",
			Consumer:      fmt.Sprintf("c%d", i),
		}, logger)
		if err != nil {
			return fmt.Errorf("subscriber: %w", err)
		}
		defer sub.Close()
		ch, err := sub.Subscribe(ctx, topic)
		if err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
		go func(ch <-chan *message.Message) {
			for msg := range ch {
				msg.Ack()
				if received.Add(1) == int64(messages) {
					closeOnce.Do(func() { close(allReceived) })
				}
			}
		}(ch)
	}

	pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: client}, logger)
	if err != nil {
		return fmt.Errorf("publisher: %w", err)
	}
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = 'x'
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	start := time.Now()
	for p := 0; p < publishers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(messages) {
				if err := pub.Publish(topic, message.NewMessage(watermill.NewUUID(), payload)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	publishSeconds := time.Since(start).Seconds()
	select {
	case err := <-errs:
		return fmt.Errorf("publish: %w", err)
	default:
	}
	select {
	case <-allReceived:
	case <-ctx.Done():
		return fmt.Errorf("received %d of %d messages before the timeout", received.Load(), messages)
	}
	seconds := time.Since(start).Seconds()
	fmt.Printf("watermill messages=%d seconds=%.3f rate=%.0f publish_rate=%.0f\n",
		messages, seconds, float64(messages)/seconds, float64(messages)/publishSeconds)
	return nil
}
