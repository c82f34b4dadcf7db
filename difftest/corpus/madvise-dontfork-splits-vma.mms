a = mmap 0 3p rw private|anonymous
madvise $a+1p 1p dontfork
maps
madvise $a+1p 1p dofork
maps
