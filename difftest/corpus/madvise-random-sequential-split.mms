# Access-pattern advice changes VMA flags and so splits VMAs.
a = mmap 0 4p rw private|anonymous
madvise $a+1p 1p random     => ok
madvise $a+2p 1p sequential => ok
maps
madvise $a 4p normal        => ok
maps
