// Command ingest-gateway accepts batches of stat events over HTTP and gRPC, validates them
// and puts them into the Kinesis stream. See README.md.
package main

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc"

	ingestv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/ingest/v1"
	"github.com/boxscore-dev/boxscore/pkg/server"
	"github.com/boxscore-dev/boxscore/pkg/stream"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/grpcapi"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/httpapi"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/ingest"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/publish"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/readiness"
)

type config struct {
	server.Base `embed:""`
	Stream      stream.Config  `embed:""`
	Publish     publish.Config `embed:""`

	HTTPAddr      string        `name:"http-addr" env:"BOXSCORE_HTTP_ADDR" default:"127.0.0.1:8080" help:"Address of the public HTTP API."`
	ReadyCacheTTL time.Duration `name:"ready-cache-ttl" env:"BOXSCORE_READY_CACHE_TTL" default:"5s" help:"How long a stream readiness answer is reused."`
}

func (c *config) Validate() error {
	var errs []error
	if c.HTTPAddr == "" {
		errs = append(errs, errors.New("http-addr is required"))
	}
	return errors.Join(append(errs, c.Server.Validate(), c.Stream.Validate(), c.Publish.Validate())...)
}

var spec = server.Spec{
	Name:        "ingest-gateway",
	Description: "Accepts stat events and puts them into the stream.",
	GRPCAddr:    "127.0.0.1:9001", AdminAddr: "127.0.0.1:9101",
	// gRPC reads a whole message before the handler can reserve its budget: bounding the
	// message and the concurrent streams per connection bounds what a client can make it hold.
	GRPCOptions: []grpc.ServerOption{grpc.MaxRecvMsgSize(grpcapi.MaxRequestBytes), grpc.MaxConcurrentStreams(16)},
}

func main() {
	var cfg config
	server.Main(spec, &cfg, func(ctx context.Context, svc *server.Service) error { return setup(ctx, svc, &cfg) })
}

func setup(ctx context.Context, svc *server.Service, cfg *config) error {
	kinesisClient, err := stream.NewKinesisClient(ctx, cfg.Stream)
	if err != nil {
		return err
	}
	publisher, err := publish.New(kinesisClient, cfg.Stream.Name, cfg.Publish, svc.Logger, svc.Meter)
	if err != nil {
		return err
	}
	ingestService, err := ingest.NewService(publisher, svc.Meter)
	if err != nil {
		return err
	}
	ingestv1.RegisterIngestServiceServer(svc.Server.GRPC(), grpcapi.NewServer(ingestService, svc.Logger))
	svc.Server.AddHTTP("public HTTP API", cfg.HTTPAddr, httpapi.NewHandler(ingestService, svc.Logger))
	svc.Server.AddReadyCheck("stream "+cfg.Stream.Name,
		readiness.NewStreamCheck(kinesisClient, cfg.Stream.Name, cfg.ReadyCacheTTL).Check)
	return nil
}
