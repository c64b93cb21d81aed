package deps
import (
 _ "github.com/hashicorp/raft"
 _ "github.com/hashicorp/raft-boltdb/v2"
 _ "github.com/hashicorp/go-memdb"
 _ "github.com/spf13/viper"
 _ "github.com/spf13/cobra"
 _ "github.com/anishathalye/porcupine"
 _ "github.com/prometheus/client_golang/prometheus"
 _ "github.com/gliderlabs/ssh"
 _ "golang.org/x/crypto/ssh"
 _ "github.com/coreos/go-oidc/v3/oidc"
 _ "golang.org/x/oauth2"
 _ "github.com/zitadel/oidc/v3/pkg/op"
)
