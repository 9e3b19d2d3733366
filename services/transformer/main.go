// Command transformer is the Boxscore transform stage: a stateless gRPC service that turns
// the shard consumer's raw Kinesis records into curated batting rows and rejections. See
// README.md.
package main

import (
	"context"

	transformv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/transform/v1"
	"github.com/boxscore-dev/boxscore/pkg/server"
	"github.com/boxscore-dev/boxscore/services/transformer/internal/grpcserver"
)

// config is the transformer's configuration: it has no settings of its own.
type config struct {
	server.Base `embed:""`
}

func (c *config) Validate() error { return c.Server.Validate() }

var spec = server.Spec{
	Name:        "transformer",
	Description: "Turns raw stream records into curated batting rows.",
	GRPCAddr:    "127.0.0.1:9002", AdminAddr: "127.0.0.1:9102",
	GRPCOptions: grpcserver.ServerOptions(),
	// With TLS only the shard consumer may call Transform.
	GRPCClients: []string{"shard-consumer"},
}

func main() {
	var cfg config
	server.Main(spec, &cfg, setup)
}

func setup(_ context.Context, svc *server.Service) error {
	transformer, err := grpcserver.New(svc.Logger, svc.Meter)
	if err != nil {
		return err
	}
	transformv1.RegisterTransformServiceServer(svc.Server.GRPC(), transformer)
	return nil
}
