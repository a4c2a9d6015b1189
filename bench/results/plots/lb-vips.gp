set terminal pngcairo noenhanced size 960,600
set output 'lb-vips.png'
set title 'sluice-bench lb: ns/packet against vips'
set xlabel 'vips'
set ylabel 'ns/packet (median, bars q1-q3)'
set key below
set grid
set yrange [0:*]
set logscale x
set y2label 'map memory (MiB)'
set y2tics
set y2range [0:*]
$series0 << EOD
1 959 926 1018
1000 989 967 1034
EOD
$series1 << EOD
1 212 207 243
1000 249 215 256
EOD
$series2 << EOD
1 157 156 159
1000 139 133 141
EOD
$series3 << EOD
1 1006 979 1053
1000 918 907 937
EOD
$series4 << EOD
1 220 217 231
1000 205 204 210
EOD
$series5 << EOD
1 154 142 157
1000 147 142 173
EOD
$floor << EOD
1 67
1000 72
EOD
$memory << EOD
1 58.50553894
1000 58.58929443
EOD
plot $series0 using 1:2:3:4 with yerrorlines lw 2 title 'ipv4 new flow (Maglev + insert)', \
     $series1 using 1:2:3:4 with yerrorlines lw 2 title 'ipv4 established (connection hit)', \
     $series2 using 1:2:3:4 with yerrorlines lw 2 title 'ipv4 not a VIP', \
     $series3 using 1:2:3:4 with yerrorlines lw 2 title 'ipv6 new flow (Maglev + insert)', \
     $series4 using 1:2:3:4 with yerrorlines lw 2 title 'ipv6 established (connection hit)', \
     $series5 using 1:2:3:4 with yerrorlines lw 2 title 'ipv6 not a VIP', \
     $floor using 1:2 with lines dt 2 lc 'black' title 'floor: harness + XDP_DROP', \
     $memory using 1:2 axes x1y2 with linespoints dt 4 lc 'gray40' title 'map memory (right axis)'
