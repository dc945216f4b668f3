package watermill

// Watermill redisstream's own tests (run by compat/watermill/run.sh from a temporary copy of the pinned module)
// import these packages. Importing them here keeps them in go.mod/go.sum, so that the copy builds with exactly
// the checked-in versions and nothing is resolved at test time.
import (
	_ "github.com/Rican7/retry"
	_ "github.com/ThreeDotsLabs/watermill/pubsub/tests"
	_ "github.com/pkg/errors"
	_ "github.com/stretchr/testify/assert"
	_ "github.com/stretchr/testify/require"
	_ "github.com/vmihailenco/msgpack"
)
