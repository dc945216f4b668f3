// Dead-lettering (Rill's broker policies, issue #16) seen by Watermill redisstream, unchanged (the versions
// compat/watermill pins). The group has `RILL.POLICY GROUP <topic> workers MAXDELIVER 3 ACKWAIT 300`.
//
// One published message is poison: its handler always Nacks it. Watermill redisstream redelivers a Nacked message
// inside the subscriber, forever, so a subscriber that got it is stuck on it; here, as a supervisor would, the test
// replaces a stuck subscriber with a new one. The poison's pending entry is then claimed by the next subscriber
// (XCLAIM after MaxIdleTime) — Redis-level delivery 2, then 3. After the third delivery fails the server moves it
// to `<topic>:dlq` (within ACKWAIT, well before Watermill's next claim) and acknowledges it: no fourth delivery ever
// happens, every other message flows and is acknowledged, nothing stays pending, and a Watermill subscriber on the
// dead-letter topic receives the poison message itself (same UUID and payload: the dead-letter entry carries the
// original fields, Watermill's unmarshaller ignores the rill-dlq-* metadata beside them).
//
// Run by compat/policies/run.sh with RILL_ADDR set.
package policies

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
)

const (
	maxDeliver = 3
	goodCount  = 20
)

// A subscriber with its own client (Close closes it) that claims the pending entries `claim` accepts.
func subscriber(t *testing.T, addr string, consumer string, claim func(redis.XPendingExt) bool) *redisstream.Subscriber {
	sub, err := redisstream.NewSubscriber(redisstream.SubscriberConfig{
		Client:                    redis.NewClient(&redis.Options{Addr: addr}),
		ConsumerGroup:             "workers",
		Consumer:                  consumer,
		BlockTime:                 100 * time.Millisecond,
		ClaimInterval:             100 * time.Millisecond,
		MaxIdleTime:               time.Second,
		NackResendSleep:           50 * time.Millisecond,
		ShouldClaimPendingMessage: claim,
	}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

func TestPoisonMessageIsDeadLetteredAfterMaxDeliveries(t *testing.T) {
	addr := os.Getenv("RILL_ADDR")
	if addr == "" {
		t.Fatal("RILL_ADDR is not set: run through compat/run")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := redis.NewClient(&redis.Options{Addr: addr})
	defer client.Close()
	topic := fmt.Sprintf("compat:dlq:%d", time.Now().UnixNano())

	// The group and its policy, set up before anyone consumes (Watermill's own XGROUP CREATE then answers BUSYGROUP,
	// which it ignores).
	if err := client.XGroupCreateMkStream(ctx, topic, "workers", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := client.Do(ctx, "RILL.POLICY", "GROUP", topic, "workers",
		"MAXDELIVER", maxDeliver, "ACKWAIT", 300).Err(); err != nil {
		t.Fatal(err)
	}
	if err := client.ConfigSet(ctx, "stream-retention-interval", "50").Err(); err != nil {
		t.Fatal(err)
	}

	pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: redis.NewClient(&redis.Options{Addr: addr})}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	poison := message.NewMessage(watermill.NewUUID(), []byte("poison"))
	poison.Metadata.Set("kind", "poison")
	if err := pub.Publish(topic, poison); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < goodCount; i++ {
		if err := pub.Publish(topic, message.NewMessage(watermill.NewUUID(), []byte(fmt.Sprintf("good-%d", i)))); err != nil {
			t.Fatal(err)
		}
	}

	// The poison's entry ID. A subscriber stuck on the poison has usually read the next message too (Watermill
	// reads ahead while its handler runs); once the subscriber is replaced that message is pending and is claimed
	// by the next claimer. So that good messages are not claimed behind the poison again and again (they would
	// reach MAXDELIVER too, rightly), the replacement subscribers claim only the poison and one long-lived
	// subscriber (replaced by another like it if the poison reaches it through XREADGROUP) claims everything else
	// (Watermill's ShouldClaimPendingMessage option).
	first, err := client.XRangeN(ctx, topic, "-", "+", 1).Result()
	if err != nil || len(first) != 1 || first[0].Values["payload"] != "poison" {
		t.Fatalf("the poison is not the first entry: %v %v", first, err)
	}
	poisonID := first[0].ID
	onlyPoison := func(xp redis.XPendingExt) bool { return xp.ID == poisonID }
	allButPoison := func(xp redis.XPendingExt) bool { return xp.ID != poisonID }

	var (
		mu       sync.Mutex
		good     = map[string]bool{}
		poisoned = map[string]bool{} // subscriber instances that got the poison from Redis
	)
	type worker struct {
		sub   *redisstream.Subscriber
		claim func(redis.XPendingExt) bool
	}
	stuck := make(chan worker, 16)
	generation := 0
	start := func(claim func(redis.XPendingExt) bool) {
		generation++
		name := fmt.Sprintf("w%d", generation)
		sub := subscriber(t, addr, name, claim)
		msgs, err := sub.Subscribe(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			reported := false
			for msg := range msgs {
				if msg.Metadata.Get("kind") == "poison" {
					mu.Lock()
					poisoned[name] = true
					mu.Unlock()
					msg.Nack() // always: Watermill resends it in process, so this subscriber is stuck
					if !reported {
						reported = true
						stuck <- worker{sub, claim}
					}
					continue
				}
				mu.Lock()
				good[string(msg.Payload)] = true
				mu.Unlock()
				msg.Ack()
			}
		}()
	}
	// Two subscribers share the group; a stuck one is replaced, as a supervisor restarts a wedged worker.
	start(allButPoison)
	start(onlyPoison)
	deadline := time.After(40 * time.Second)
	done := false
	for !done {
		select {
		case w := <-stuck:
			// Replaced by a subscriber that claims the same entries.
			if err := w.sub.Close(); err != nil {
				t.Fatal(err)
			}
			start(w.claim)
		case <-time.After(200 * time.Millisecond):
			n, err := client.XLen(ctx, topic+":dlq").Result()
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			allGood := len(good) == goodCount
			mu.Unlock()
			done = n == 1 && allGood
		case <-deadline:
			mu.Lock()
			pel, _ := client.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: topic, Group: "workers", Start: "-", End: "+", Count: 100}).Result()
			consumers, _ := client.XInfoConsumers(ctx, topic, "workers").Result()
			t.Fatalf("timed out: %d good messages acked, poison delivered to %d subscribers; pending %+v; consumers %+v",
				len(good), len(poisoned), pel, consumers)
		}
	}
	// No fourth delivery: wait past Watermill's claim interval and MaxIdleTime twice over.
	time.Sleep(2500 * time.Millisecond)
	for len(stuck) > 0 {
		w := <-stuck
		_ = w.sub.Close()
	}
	mu.Lock()
	deliveries := len(poisoned)
	mu.Unlock()
	if deliveries != maxDeliver {
		t.Fatalf("the poison was delivered to %d subscribers, want exactly %d (MAXDELIVER)", deliveries, maxDeliver)
	}
	pending, err := client.XPending(ctx, topic, "workers").Result()
	if err != nil {
		t.Fatal(err)
	}
	if pending.Count != 0 {
		t.Fatalf("%d entries still pending", pending.Count)
	}
	dead, err := client.XRange(ctx, topic+":dlq", "-", "+").Result()
	if err != nil || len(dead) != 1 {
		t.Fatalf("dead-letter stream: %v entries, %v", len(dead), err)
	}
	meta := dead[0].Values
	if meta["rill-dlq-deliveries"] != fmt.Sprint(maxDeliver) || meta["rill-dlq-group"] != "workers" ||
		meta["rill-dlq-source-key"] != topic || meta["rill-dlq-reason"] != "max-deliver" {
		t.Fatalf("dead-letter metadata: %v", meta)
	}

	// A Watermill subscriber of the dead-letter topic gets the poison message itself.
	dlqSub, err := redisstream.NewSubscriber(redisstream.SubscriberConfig{
		Client:        redis.NewClient(&redis.Options{Addr: addr}),
		ConsumerGroup: "inspectors",
		BlockTime:     100 * time.Millisecond,
	}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer dlqSub.Close()
	dlqMsgs, err := dlqSub.Subscribe(ctx, topic+":dlq")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case msg := <-dlqMsgs:
		if msg.UUID != poison.UUID || string(msg.Payload) != "poison" || msg.Metadata.Get("kind") != "poison" {
			t.Fatalf("dead-letter message %s %q %v, want %s \"poison\"", msg.UUID, msg.Payload, msg.Metadata, poison.UUID)
		}
		msg.Ack()
	case <-time.After(10 * time.Second):
		t.Fatal("no message on the dead-letter topic")
	}
}
