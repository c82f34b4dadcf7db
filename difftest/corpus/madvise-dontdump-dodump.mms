a = mmap 0 2p rw private|anonymous
madvise $a 1p dontdump     => ok
maps
madvise $a 1p dodump       => ok
maps
