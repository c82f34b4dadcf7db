a = mmap 0 1p rw private|anonymous
write $a 1p 0x22
madvise $a 1p dontfork
madvise $a 1p dofork       => ok
fork {
  read $a 1                  => ok
}
maps
