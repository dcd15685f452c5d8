import (toString ./lib/id.nix) 3
