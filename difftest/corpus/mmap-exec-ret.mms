a = mmap 0 1p rwx private|anonymous
write $a 1 0xc3
exec $a                    => ok
