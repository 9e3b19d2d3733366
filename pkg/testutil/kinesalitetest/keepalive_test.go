package kinesalitetest

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

func TestKeptAliveProcessComesBackWithItsData(t *testing.T) {
	p, err := startProcess(Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	go p.keepAlive()
	t.Cleanup(func() { _ = p.stop(syscall.SIGKILL) })
	client := p.Client(t)
	name := UniqueName(t)
	if err := createStream(context.Background(), client, name, 1); err != nil {
		t.Fatal(err)
	}

	p.mu.Lock()
	victim := p.cur
	p.mu.Unlock()
	_ = victim.cmd.Process.Kill() // a crash, not a stop
	<-victim.exited

	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := client.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream not back after the crash: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if p.deathCount() != 1 {
		t.Fatalf("deaths recorded = %d, want 1", p.deathCount())
	}
}
