//! Quiescing writers through the scale subresource. (Being built.)
