package watermill

// go-redis Pub/Sub against Rill (issue #15): Subscribe and PSubscribe channels, SSubscribe, PUBSUB
// introspection, and Unsubscribe, in the RESP version of RILL_PROTOCOL. Each assertion is what Redis 8.6.3
// answers (checked against one first).

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestGoRedisSubscribeAndPSubscribeChannels(t *testing.T) {
	addr := serverAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sub := newClient(t, addr)
	pub := newClient(t, addr)
	topic := fmt.Sprintf("compat:go:ps:%d", time.Now().UnixNano())

	ps := sub.Subscribe(ctx, topic)
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil { // the subscribe confirmation
		t.Fatalf("subscribe: %v", err)
	}
	pps := sub.PSubscribe(ctx, topic[:len(topic)-3]+"*")
	defer pps.Close()
	if _, err := pps.Receive(ctx); err != nil {
		t.Fatalf("psubscribe: %v", err)
	}
	counts, err := pub.PubSubNumSub(ctx, topic).Result()
	if err != nil || counts[topic] != 1 {
		t.Fatalf("PUBSUB NUMSUB: %v %v", counts, err)
	}
	if n, err := pub.PubSubNumPat(ctx).Result(); err != nil || n < 1 {
		t.Fatalf("PUBSUB NUMPAT: %d %v", n, err)
	}
	ch := ps.Channel()
	pch := pps.Channel()
	for i := 0; i < 100; i++ {
		n, err := pub.Publish(ctx, topic, fmt.Sprint(i)).Result()
		if err != nil || n != 2 {
			t.Fatalf("PUBLISH %d: %d %v", i, n, err)
		}
	}
	for i := 0; i < 100; i++ {
		select {
		case m := <-ch:
			if m.Channel != topic || m.Payload != fmt.Sprint(i) || m.Pattern != "" {
				t.Fatalf("message %d: %+v", i, m)
			}
		case <-ctx.Done():
			t.Fatalf("message %d never came", i)
		}
		select {
		case m := <-pch:
			if m.Channel != topic || m.Payload != fmt.Sprint(i) || m.Pattern != topic[:len(topic)-3]+"*" {
				t.Fatalf("pmessage %d: %+v", i, m)
			}
		case <-ctx.Done():
			t.Fatalf("pmessage %d never came", i)
		}
	}
	if err := ps.Unsubscribe(ctx, topic); err != nil {
		t.Fatalf("unsubscribe: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		counts, err := pub.PubSubNumSub(ctx, topic).Result()
		if err == nil && counts[topic] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still subscribed: %v %v", counts, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestGoRedisShardChannels(t *testing.T) {
	addr := serverAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sub := newClient(t, addr)
	pub := newClient(t, addr)
	topic := fmt.Sprintf("compat:go:sps:%d", time.Now().UnixNano())
	ps := sub.SSubscribe(ctx, topic)
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatalf("ssubscribe: %v", err)
	}
	if counts, err := pub.PubSubShardNumSub(ctx, topic).Result(); err != nil || counts[topic] != 1 {
		t.Fatalf("PUBSUB SHARDNUMSUB: %v %v", counts, err)
	}
	if n, err := pub.SPublish(ctx, topic, "s1").Result(); err != nil || n != 1 {
		t.Fatalf("SPUBLISH: %d %v", n, err)
	}
	select {
	case m := <-ps.Channel():
		if m.Channel != topic || m.Payload != "s1" {
			t.Fatalf("smessage: %+v", m)
		}
	case <-ctx.Done():
		t.Fatal("smessage never came")
	}
}
