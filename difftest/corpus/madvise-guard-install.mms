# Guard regions (Linux 6.13): access faults without a VMA change.
a = mmap 0 3p rw private|anonymous
write $a 3p 0x9
madvise $a+1p 1p guard_install  => ok
read $a+1p 1               => SIGSEGV
read $a 1                  => ok
maps
