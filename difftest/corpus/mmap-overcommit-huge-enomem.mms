# Heuristic overcommit refuses one private writable mapping larger than RAM plus swap.
mmap 0 64g rw private|anonymous
a = mmap 0 64g rw private|anonymous|noreserve
mmap 0 64g r private|anonymous
